//! `scopecast link`: named, expiring, revocable links for one person each.
//!
//! `scopecast link --role annotator --name "Dr A" --expires 8h` signs a
//! token with the station's link secret (see `scopecast_transport::links`)
//! and prints the link; the station accepts it until it expires, with no
//! config edit and no restart. Each link issued is listed (id, name, role,
//! expiry; never the token) in `links.jsonl` in the state folder, so `list`
//! can show them and `revoke` can take a name. `revoke` writes
//! `revoked.json`; a running station with the same state folder refuses the
//! link and ends its holder's sessions within
//! [`scopecast_engine::http::LINK_CHECK_INTERVAL`].

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use scopecast_engine::config::Config;
use scopecast_transport::auth::Role;
use scopecast_transport::links::{LinkClaims, LinkId, LinkKey, Revocations, Revoked, check_name, parse_duration_s};
use serde::{Deserialize, Serialize};

/// The issued links' list in the state folder.
pub const ISSUED_FILE: &str = "links.jsonl";

/// `scopecast link …`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct LinkArgs {
    #[command(subcommand)]
    command: Option<LinkCommand>,
    #[command(flatten)]
    issue: IssueArgs,
}

#[derive(Debug, Subcommand)]
enum LinkCommand {
    /// The links issued, with whether each still works.
    List {
        /// The station's config (for `[access] state_dir`).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Refuse a link from now on; the running station ends its holder's sessions at once.
    Revoke {
        /// The link's id (16 hex digits, from `list`) or its exact name.
        link: String,
        /// The station's config (for `[access] state_dir`).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
struct IssueArgs {
    /// What the person may do: viewer (watch), annotator (also draw), operator (everything).
    #[arg(long, value_parser = parse_role)]
    role: Option<Role>,
    /// Who it is for, as the others will see them (no patient data).
    #[arg(long)]
    name: Option<String>,
    /// How long it works: 90m, 8h, 2d.
    #[arg(long, default_value = "8h")]
    expires: String,
    /// The station's address as the person reaches it (default: from `[http] listen`).
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// The station's config (for `[access] state_dir` and `[http] listen`).
    #[arg(long, short)]
    config: Option<PathBuf>,
}

fn parse_role(text: &str) -> Result<Role, String> {
    match text {
        "viewer" => Ok(Role::Viewer),
        "annotator" => Ok(Role::Annotator),
        "operator" => Ok(Role::Operator),
        other => Err(format!("{other:?} is not a role: viewer, annotator or operator")),
    }
}

/// One line of `links.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Issued {
    id: String,
    name: String,
    role: Role,
    issued_unix_s: u64,
    expires_unix_s: u64,
}

fn now_unix_s() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    Ok(path.map_or_else(|| Ok(Config::default()), Config::load)?)
}

/// Runs `scopecast link …`; the text to print.
pub fn run(args: &LinkArgs) -> anyhow::Result<String> {
    match &args.command {
        Some(LinkCommand::List { config }) => list(&load_config(config.as_deref())?.access.state_dir(), now_unix_s()),
        Some(LinkCommand::Revoke { link, config }) => {
            revoke(&load_config(config.as_deref())?.access.state_dir(), link, now_unix_s())
        }
        None => issue(&args.issue, now_unix_s()),
    }
}

/// `YYYY-MM-DD HH:MM UTC` for Unix s.
fn utc_words(unix_s: u64) -> String {
    let stamp = scopecast_engine::recorder::utc_stamp(unix_s.saturating_mul(1000));
    // YYYYMMDDTHHMMSSZ
    format!("{}-{}-{} {}:{} UTC", &stamp[0..4], &stamp[4..6], &stamp[6..8], &stamp[9..11], &stamp[11..13])
}

/// The base URL people reach the station at, from `[http] listen`.
fn base_url(config: &Config) -> anyhow::Result<String> {
    let Some(listen) = &config.http.listen else {
        return Ok("http://127.0.0.1:8080".into());
    };
    let addr: std::net::SocketAddr = listen.parse().context("[http] listen")?;
    let scheme = if addr.ip().is_loopback() { "http" } else { "https" };
    if addr.ip().is_unspecified() {
        bail!("[http] listen is {addr}: give the address people reach the station at with --url https://HOST:PORT");
    }
    Ok(format!("{scheme}://{addr}"))
}

/// Percent-encodes a URL fragment parameter's value (RFC 3986 unreserved kept).
fn fragment_value(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn issue(args: &IssueArgs, now_s: u64) -> anyhow::Result<String> {
    let (Some(role), Some(name)) = (args.role, args.name.as_deref()) else {
        bail!("a link needs --role viewer|annotator|operator and --name \"…\" (or: scopecast link list | revoke ID)");
    };
    let name = check_name(name)?.to_string();
    let Some(lifetime_s) = parse_duration_s(&args.expires) else {
        bail!("--expires {:?}: give a number and a unit, such as 90m, 8h or 2d", args.expires);
    };
    let config = load_config(args.config.as_deref())?;
    let base = match &args.url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => base_url(&config)?,
    };
    let state_dir = config.access.state_dir();
    let key = LinkKey::load_or_create(&state_dir)?;
    let claims = LinkClaims { id: LinkId::generate()?, name: name.clone(), role, expires_unix_s: now_s + lifetime_s };
    let token = key.sign(&claims);
    let issued = Issued {
        id: claims.id.to_string(),
        name: name.clone(),
        role,
        issued_unix_s: now_s,
        expires_unix_s: claims.expires_unix_s,
    };
    let path = state_dir.join(ISSUED_FILE);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    writeln!(file, "{}", serde_json::to_string(&issued)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    let role_words = format!("{role:?}").to_lowercase();
    Ok(format!(
        "link for {name:?} ({role_words}), works until {} (link id {}):\n{base}/#token={token}&name={}\n\
         WHEP players: bearer token {token}\n\
         revoke it with: scopecast link revoke {}{}",
        utc_words(claims.expires_unix_s),
        claims.id,
        fragment_value(&name),
        claims.id,
        args.config.as_ref().map(|c| format!(" --config {}", c.display())).unwrap_or_default(),
    ))
}

fn read_issued(state_dir: &Path) -> Vec<Issued> {
    std::fs::read_to_string(state_dir.join(ISSUED_FILE))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

fn list(state_dir: &Path, now_s: u64) -> anyhow::Result<String> {
    let revoked = Revocations::load(state_dir)?;
    let issued = read_issued(state_dir);
    if issued.is_empty() {
        return Ok(format!("no links issued from {}", state_dir.display()));
    }
    let mut text = format!("{:<16}  {:<9}  {:<8}  {:<20}  name\n", "id", "role", "state", "until");
    for link in issued {
        let state = match LinkId::parse(&link.id) {
            Some(id) if revoked.contains(id) => "revoked",
            _ if now_s >= link.expires_unix_s => "expired",
            _ => "works",
        };
        let role = format!("{:?}", link.role).to_lowercase();
        text.push_str(&format!(
            "{:<16}  {role:<9}  {state:<8}  {:<20}  {}\n",
            link.id,
            utc_words(link.expires_unix_s),
            link.name
        ));
    }
    Ok(text.trim_end().to_string())
}

fn revoke(state_dir: &Path, which: &str, now_s: u64) -> anyhow::Result<String> {
    let issued = read_issued(state_dir);
    let (id, name) = match LinkId::parse(which) {
        Some(id) => {
            let name = issued.iter().find(|l| l.id == id.to_string()).map(|l| l.name.clone()).unwrap_or_default();
            (id, name)
        }
        None => {
            let matches: Vec<&Issued> = issued.iter().filter(|l| l.name == which).collect();
            match matches.as_slice() {
                [one] => (LinkId::parse(&one.id).context("a malformed id in links.jsonl")?, one.name.clone()),
                [] => bail!("no link id or name {which:?} (see: scopecast link list)"),
                _ => bail!(
                    "{} links are named {which:?}: revoke each by its id (see: scopecast link list)",
                    matches.len()
                ),
            }
        }
    };
    let mut revoked = Revocations::load(state_dir)?;
    if !revoked.revoke(id, Revoked { name: name.clone(), at_unix_s: now_s }) {
        return Ok(format!("link {id} ({name:?}) was already revoked"));
    }
    revoked.store(state_dir)?;
    Ok(format!(
        "revoked link {id} ({name:?}): refused from now on; a running station with this state folder ({}) ends its sessions within a second",
        state_dir.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_list_and_revoke_by_name() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = dir.path().join("station.toml");
        let state = dir.path().join("state");
        std::fs::write(
            &config_path,
            format!("[http]\nlisten = \"127.0.0.1:9000\"\n[access]\nstate_dir = {:?}\n", state.display().to_string()),
        )
        .expect("config");
        let args = IssueArgs {
            role: Some(Role::Annotator),
            name: Some("Dr A".into()),
            expires: "2h".into(),
            url: None,
            config: Some(config_path.clone()),
        };
        let text = issue(&args, 1_000_000).expect("issued");
        assert!(text.contains("http://127.0.0.1:9000/#token=sc1."), "{text}");
        assert!(text.contains("&name=Dr%20A"), "{text}");
        let token = text.split("#token=").nth(1).and_then(|t| t.split('&').next()).expect("token");
        let key = LinkKey::load_or_create(&state).expect("key");
        let claims = key.open(token).expect("our link");
        assert_eq!((claims.name.as_str(), claims.role, claims.expires_unix_s), ("Dr A", Role::Annotator, 1_007_200));
        let listed = list(&state, 1_000_001).expect("list");
        assert!(listed.contains("works") && listed.contains("Dr A") && !listed.contains(token), "{listed}");
        assert!(list(&state, 1_007_200).expect("list").contains("expired"));
        let said = revoke(&state, "Dr A", 1_000_002).expect("revoked");
        assert!(said.contains(&claims.id.to_string()), "{said}");
        assert!(Revocations::load(&state).expect("file").contains(claims.id));
        assert!(list(&state, 1_000_003).expect("list").contains("revoked"));
        assert!(revoke(&state, "Dr B", 1_000_004).is_err(), "an unknown name is an error");
        let bad = IssueArgs { expires: "forever".into(), ..args };
        assert!(issue(&bad, 1).is_err());
    }
}
