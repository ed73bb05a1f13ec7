//! Triangle meshes for the anatomy overlay, loaded from OBJ, STL (ASCII and
//! binary) and glTF 2.0 (`.glb`, and `.gltf` with embedded buffers), and
//! checked before they reach the GPU: a broken or hostile file gives an error
//! naming the file and the problem, never a panic or a giant allocation.
//!
//! Units are whatever the file uses (millimetres for our models); the model's
//! pose in the scene maps them into the camera frame.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// Files larger than this are refused before reading (bytes).
pub const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;
/// Meshes with more triangles than this are refused.
pub const MAX_TRIANGLES: usize = 5_000_000;
/// Meshes with more vertices than this are refused.
pub const MAX_VERTICES: usize = 10_000_000;

/// What is wrong with a mesh.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum MeshError {
    /// The file could not be read.
    #[error("{path}: cannot read: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        reason: String,
    },
    /// The extension names no format we read.
    #[error("{path}: unknown mesh format (use .obj, .stl, .glb or .gltf)")]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// The file is larger than [`MAX_FILE_BYTES`].
    #[error("{path}: {bytes} bytes is larger than the {max_bytes}-byte limit")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        bytes: u64,
        /// The limit.
        max_bytes: u64,
    },
    /// The format parser rejected the file.
    #[error("{path}: not a valid {format} file: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// OBJ, STL or glTF.
        format: &'static str,
        /// The parser's message.
        reason: String,
    },
    /// The geometry is unusable.
    #[error("{path}: {problem}")]
    Invalid {
        /// The file (or `<memory>`).
        path: PathBuf,
        /// What is wrong.
        problem: MeshProblem,
    },
}

/// A structural problem of mesh data.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum MeshProblem {
    /// No triangles at all.
    #[error("the mesh has no triangles")]
    Empty,
    /// More triangles or vertices than allowed.
    #[error("{triangles} triangles / {vertices} vertices exceed the limits ({MAX_TRIANGLES} / {MAX_VERTICES})")]
    TooBig {
        /// Triangles.
        triangles: usize,
        /// Vertices.
        vertices: usize,
    },
    /// Index count is not a multiple of three.
    #[error("{count} indices do not form whole triangles")]
    PartialTriangle {
        /// Index count.
        count: usize,
    },
    /// An index points past the vertices.
    #[error("index {index} at position {at} is out of range for {vertices} vertices")]
    IndexOutOfRange {
        /// The index value.
        index: u32,
        /// Where in the index list.
        at: usize,
        /// Number of vertices.
        vertices: usize,
    },
    /// A coordinate is NaN or infinite.
    #[error("vertex {vertex} has a non-finite coordinate")]
    NonFinite {
        /// The vertex.
        vertex: usize,
    },
    /// Normals and positions differ in count.
    #[error("{normals} normals for {positions} positions")]
    NormalCount {
        /// Normals given.
        normals: usize,
        /// Positions given.
        positions: usize,
    },
}

/// An indexed triangle mesh with per-vertex normals.
#[derive(Debug, Clone)]
pub struct Mesh {
    /// Vertex positions, model units.
    pub positions: Vec<[f32; 3]>,
    /// Unit normals, one per vertex.
    pub normals: Vec<[f32; 3]>,
    /// Triangle list.
    pub indices: Vec<u32>,
    /// Ray casts against it, built at the first use (see [`Mesh::surface`]).
    surface: std::sync::OnceLock<std::sync::Arc<super::surface::SurfaceBvh>>,
}

impl PartialEq for Mesh {
    /// The same geometry (whether its ray-cast hierarchy was built yet does not matter).
    fn eq(&self, other: &Self) -> bool {
        self.positions == other.positions && self.normals == other.normals && self.indices == other.indices
    }
}

fn sub(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn cross(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

fn normalize(v: [f32; 3]) -> [f32; 3] {
    let len = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
    if len > 1e-20 { [v[0] / len, v[1] / len, v[2] / len] } else { [0.0, 0.0, 1.0] }
}

impl Mesh {
    /// Builds and checks a mesh; computes area-weighted smooth normals when
    /// `normals` is `None`.
    pub fn new(
        positions: Vec<[f32; 3]>,
        normals: Option<Vec<[f32; 3]>>,
        indices: Vec<u32>,
    ) -> Result<Self, MeshProblem> {
        if indices.is_empty() {
            return Err(MeshProblem::Empty);
        }
        if !indices.len().is_multiple_of(3) {
            return Err(MeshProblem::PartialTriangle { count: indices.len() });
        }
        if indices.len() / 3 > MAX_TRIANGLES || positions.len() > MAX_VERTICES {
            return Err(MeshProblem::TooBig { triangles: indices.len() / 3, vertices: positions.len() });
        }
        if let Some(vertex) = positions.iter().position(|p| p.iter().any(|c| !c.is_finite())) {
            return Err(MeshProblem::NonFinite { vertex });
        }
        if let Some((at, &index)) = indices.iter().enumerate().find(|(_, i)| **i as usize >= positions.len()) {
            return Err(MeshProblem::IndexOutOfRange { index, at, vertices: positions.len() });
        }
        let normals = match normals {
            Some(n) if n.len() != positions.len() => {
                return Err(MeshProblem::NormalCount { normals: n.len(), positions: positions.len() });
            }
            Some(n) if n.iter().all(|v| v.iter().all(|c| c.is_finite())) => n.into_iter().map(normalize).collect(),
            _ => smooth_normals(&positions, &indices),
        };
        Ok(Self { positions, normals, indices, surface: std::sync::OnceLock::new() })
    }

    /// Its surface for ray casts (marks on the anatomy), built at the first
    /// call (a few ms per 100 000 triangles) and shared by every clone made after.
    pub fn surface(&self) -> &super::surface::SurfaceBvh {
        self.surface
            .get_or_init(|| std::sync::Arc::new(super::surface::SurfaceBvh::build(&self.positions, &self.indices)))
    }

    /// Number of triangles.
    pub fn triangle_count(&self) -> usize {
        self.indices.len() / 3
    }

    /// Unique edges as a line list (for wireframe drawing).
    pub fn edge_indices(&self) -> Vec<u32> {
        let mut edges: Vec<(u32, u32)> = self
            .indices
            .chunks_exact(3)
            .flat_map(|t| [(t[0], t[1]), (t[1], t[2]), (t[2], t[0])])
            .map(|(a, b)| (a.min(b), a.max(b)))
            .collect();
        edges.sort_unstable();
        edges.dedup();
        edges.into_iter().flat_map(|(a, b)| [a, b]).collect()
    }
}

fn smooth_normals(positions: &[[f32; 3]], indices: &[u32]) -> Vec<[f32; 3]> {
    let mut sums = vec![[0.0f32; 3]; positions.len()];
    for t in indices.chunks_exact(3) {
        let [a, b, c] = [t[0] as usize, t[1] as usize, t[2] as usize];
        // The cross product's length is twice the area: larger faces weigh more.
        let n = cross(sub(positions[b], positions[a]), sub(positions[c], positions[a]));
        for v in [a, b, c] {
            for k in 0..3 {
                sums[v][k] += n[k];
            }
        }
    }
    sums.into_iter().map(normalize).collect()
}

fn invalid(path: &Path, problem: MeshProblem) -> MeshError {
    MeshError::Invalid { path: path.to_path_buf(), problem }
}

/// Loads a mesh file, choosing the format by extension.
pub fn load_mesh(path: &Path) -> Result<Mesh, MeshError> {
    let read_err = |e: std::io::Error| MeshError::Read { path: path.to_path_buf(), reason: e.to_string() };
    let bytes = std::fs::metadata(path).map_err(read_err)?.len();
    if bytes > MAX_FILE_BYTES {
        return Err(MeshError::TooLarge { path: path.to_path_buf(), bytes, max_bytes: MAX_FILE_BYTES });
    }
    let extension = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let data = std::fs::read(path).map_err(read_err)?;
    match extension.as_deref() {
        Some("obj") => parse_obj(&data, path),
        Some("stl") => parse_stl(&data, path),
        Some("glb") | Some("gltf") => parse_gltf(&data, path),
        _ => Err(MeshError::UnknownFormat { path: path.to_path_buf() }),
    }
}

/// Parses OBJ text (all objects merged; faces triangulated).
pub fn parse_obj(data: &[u8], path: &Path) -> Result<Mesh, MeshError> {
    let parse_err = |reason: String| MeshError::Parse { path: path.to_path_buf(), format: "OBJ", reason };
    let options = tobj::LoadOptions { triangulate: true, single_index: true, ignore_points: true, ignore_lines: true };
    let mut reader = std::io::BufReader::new(data);
    // Materials are irrelevant to the overlay: refuse to open any .mtl file.
    let (models, _) = tobj::load_obj_buf(&mut reader, &options, |_| Err(tobj::LoadError::OpenFileFailed))
        .map_err(|e| parse_err(e.to_string()))?;
    let (mut positions, mut normals, mut indices) = (Vec::new(), Vec::new(), Vec::new());
    let mut all_have_normals = true;
    for model in models {
        let m = model.mesh;
        let base = positions.len() as u32;
        let count = m.positions.len() / 3;
        positions.extend(m.positions.chunks_exact(3).map(|p| [p[0], p[1], p[2]]));
        if m.normals.len() == m.positions.len() {
            normals.extend(m.normals.chunks_exact(3).map(|n| [n[0], n[1], n[2]]));
        } else {
            all_have_normals = false;
            normals.extend(std::iter::repeat_n([0.0; 3], count));
        }
        indices.extend(m.indices.iter().map(|i| base.saturating_add(*i)));
    }
    Mesh::new(positions, all_have_normals.then_some(normals), indices).map_err(|p| invalid(path, p))
}

/// Parses ASCII or binary STL.
pub fn parse_stl(data: &[u8], path: &Path) -> Result<Mesh, MeshError> {
    // A binary STL states its triangle count; refuse absurd counts before allocating.
    if data.len() >= 84 && !data.starts_with(b"solid") {
        let count = u32::from_le_bytes([data[80], data[81], data[82], data[83]]) as usize;
        if count > MAX_TRIANGLES {
            return Err(invalid(path, MeshProblem::TooBig { triangles: count, vertices: count * 3 }));
        }
        if data.len() < 84 + count * 50 {
            return Err(MeshError::Parse {
                path: path.to_path_buf(),
                format: "STL",
                reason: format!("header says {count} triangles but the file holds {} bytes", data.len()),
            });
        }
    }
    let mut cursor = std::io::Cursor::new(data);
    let stl = stl_io::read_stl(&mut cursor).map_err(|e| MeshError::Parse {
        path: path.to_path_buf(),
        format: "STL",
        reason: e.to_string(),
    })?;
    let positions: Vec<[f32; 3]> = stl.vertices.iter().map(|v| [v[0], v[1], v[2]]).collect();
    let indices: Vec<u32> = stl.faces.iter().flat_map(|f| f.vertices.iter().map(|&i| i as u32)).collect();
    Mesh::new(positions, None, indices).map_err(|p| invalid(path, p))
}

/// Parses glTF 2.0 (binary `.glb`, or `.gltf` JSON with embedded base64 buffers):
/// every triangle primitive of every mesh, in its node's world transform is
/// not applied (models are exported in their own frame).
pub fn parse_gltf(data: &[u8], path: &Path) -> Result<Mesh, MeshError> {
    let parse_err = |reason: String| MeshError::Parse { path: path.to_path_buf(), format: "glTF", reason };
    // gltf-json 1.4 indexes the POSITION accessor without a bounds check
    // while validating (a crafted file panicked it, found by the `mesh` fuzz
    // target): that index is checked here first, then the crate validates.
    let unchecked = gltf::Gltf::from_slice_without_validation(data).map_err(|e| parse_err(e.to_string()))?;
    let root = unchecked.document.as_json();
    for (m, mesh) in root.meshes.iter().enumerate() {
        for (p, primitive) in mesh.primitives.iter().enumerate() {
            let position = primitive.attributes.get(&gltf::json::validation::Checked::Valid(gltf::Semantic::Positions));
            if let Some(accessor) = position
                && accessor.value() >= root.accessors.len()
            {
                return Err(parse_err(format!(
                    "meshes[{m}].primitives[{p}] POSITION names accessor {} of {}",
                    accessor.value(),
                    root.accessors.len()
                )));
            }
        }
    }
    let gltf = gltf::Gltf {
        document: gltf::Document::from_json(unchecked.document.into_json()).map_err(|e| parse_err(e.to_string()))?,
        blob: unchecked.blob,
    };
    let mut buffers: Vec<Vec<u8>> = Vec::new();
    for buffer in gltf.buffers() {
        let bytes = match buffer.source() {
            gltf::buffer::Source::Bin => {
                gltf.blob.clone().ok_or_else(|| parse_err("GLB without its BIN chunk".into()))?
            }
            gltf::buffer::Source::Uri(uri) => {
                let encoded = uri
                    .strip_prefix("data:application/octet-stream;base64,")
                    .or_else(|| uri.strip_prefix("data:application/gltf-buffer;base64,"))
                    .ok_or_else(|| parse_err(format!("external buffer {uri:?}: only embedded buffers are read")))?;
                decode_base64(encoded).ok_or_else(|| parse_err("buffer is not valid base64".into()))?
            }
        };
        if bytes.len() < buffer.length() {
            return Err(parse_err(format!(
                "buffer {} holds {} of {} bytes",
                buffer.index(),
                bytes.len(),
                buffer.length()
            )));
        }
        buffers.push(bytes);
    }
    let (mut positions, mut normals, mut indices) = (Vec::new(), Vec::new(), Vec::new());
    let mut all_have_normals = true;
    for mesh in gltf.meshes() {
        for primitive in mesh.primitives() {
            if primitive.mode() != gltf::mesh::Mode::Triangles {
                continue;
            }
            // gltf 1.4's readers assume each accessor has the shape its
            // attribute needs (debug assertions, found by the `mesh` fuzz
            // target: a VEC4 u32 POSITION), so the shapes are checked first.
            use gltf::Semantic;
            use gltf::accessor::{DataType, Dimensions};
            let shapes = [
                ("POSITION", primitive.get(&Semantic::Positions), Dimensions::Vec3, &[DataType::F32][..]),
                ("NORMAL", primitive.get(&Semantic::Normals), Dimensions::Vec3, &[DataType::F32][..]),
                ("indices", primitive.indices(), Dimensions::Scalar, &[DataType::U8, DataType::U16, DataType::U32][..]),
            ];
            for (what, accessor, dimensions, types) in shapes {
                let Some(accessor) = accessor else { continue };
                let stride_fits = accessor.view().is_none_or(|v| v.stride().is_none_or(|s| s >= accessor.size()));
                // Its last element's end, computed as gltf's reader does but
                // without overflow (the reader subtracts 1 from the count).
                let stride = accessor.view().and_then(|v| v.stride()).unwrap_or(accessor.size());
                let end = accessor
                    .count()
                    .checked_sub(1)
                    .and_then(|last| stride.checked_mul(last))
                    .and_then(|at| at.checked_add(accessor.offset()))
                    .and_then(|at| at.checked_add(accessor.size()));
                if end.is_none() {
                    return Err(parse_err(format!(
                        "mesh {} primitive {}: the {what} accessor {} holds {} elements at offset {}",
                        mesh.index(),
                        primitive.index(),
                        accessor.index(),
                        accessor.count(),
                        accessor.offset()
                    )));
                }
                if accessor.dimensions() != dimensions
                    || !types.contains(&accessor.data_type())
                    || accessor.sparse().is_some()
                    || !stride_fits
                {
                    return Err(parse_err(format!(
                        "mesh {} primitive {}: the {what} accessor {} is {:?} of {:?}{}{}, expected {dimensions:?} of {types:?}",
                        mesh.index(),
                        primitive.index(),
                        accessor.index(),
                        accessor.dimensions(),
                        accessor.data_type(),
                        if accessor.sparse().is_some() { ", sparse" } else { "" },
                        if stride_fits { "" } else { ", with a stride shorter than an element" },
                    )));
                }
            }
            let reader = primitive.reader(|b| buffers.get(b.index()).map(Vec::as_slice));
            let Some(points) = reader.read_positions() else { continue };
            let base = positions.len() as u32;
            let before = positions.len();
            positions.extend(points.take(MAX_VERTICES + 1));
            if positions.len() > MAX_VERTICES {
                return Err(invalid(path, MeshProblem::TooBig { triangles: 0, vertices: positions.len() }));
            }
            let count = positions.len() - before;
            match reader.read_normals() {
                Some(n) => {
                    let n: Vec<[f32; 3]> = n.take(count).collect();
                    all_have_normals &= n.len() == count;
                    normals.extend(n);
                }
                None => {
                    all_have_normals = false;
                    normals.extend(std::iter::repeat_n([0.0; 3], count));
                }
            }
            match reader.read_indices() {
                Some(i) => indices.extend(i.into_u32().take(MAX_TRIANGLES * 3 + 1).map(|i| base.saturating_add(i))),
                None => indices.extend((0..count as u32).map(|i| base + i)),
            }
        }
    }
    let normals = (all_have_normals && normals.len() == positions.len()).then_some(normals);
    Mesh::new(positions, normals, indices).map_err(|p| invalid(path, p))
}

/// Standard base64 (RFC 4648) without line breaks; `None` on any bad symbol.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let trimmed = text.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(trimmed.len() * 3 / 4);
    for chunk in trimmed.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        match chunk.len() {
            4 => out.extend_from_slice(&bytes[1..4]),
            3 => out.extend_from_slice(&bytes[1..3]),
            2 => out.push(bytes[1]),
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CUBE_OBJ: &str = "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nv 0 0 1\nv 1 0 1\nv 1 1 1\nv 0 1 1\n\
        f 1 2 3 4\nf 5 8 7 6\nf 1 5 6 2\nf 2 6 7 3\nf 3 7 8 4\nf 4 8 5 1\n";

    fn path() -> &'static Path {
        Path::new("model.test")
    }

    #[test]
    fn obj_quads_are_triangulated_with_smooth_normals() {
        let mesh = parse_obj(CUBE_OBJ.as_bytes(), path()).expect("cube parses");
        assert_eq!(mesh.triangle_count(), 12);
        assert_eq!(mesh.positions.len(), 8);
        for n in &mesh.normals {
            let len = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
            assert!((len - 1.0).abs() < 1e-5);
        }
        assert_eq!(mesh.edge_indices().len() / 2, 18, "12 cube edges + 6 face diagonals");
    }

    #[test]
    fn binary_and_ascii_stl_read_the_same_triangle() {
        let ascii = b"solid t\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 1 0 0\nvertex 0 1 0\nendloop\nendfacet\nendsolid t\n";
        let mut binary = vec![0u8; 80];
        binary.extend_from_slice(&1u32.to_le_bytes());
        for v in [[0f32, 0., 1.], [0., 0., 0.], [1., 0., 0.], [0., 1., 0.]] {
            for c in v {
                binary.extend_from_slice(&c.to_le_bytes());
            }
        }
        binary.extend_from_slice(&[0, 0]);
        let a = parse_stl(ascii, path()).expect("ascii");
        let b = parse_stl(&binary, path()).expect("binary");
        assert_eq!(a.triangle_count(), 1);
        assert_eq!(a.positions.len(), b.positions.len());
    }

    #[test]
    fn hostile_files_are_errors_not_panics() {
        // Truncated binary STL claiming a billion triangles.
        let mut huge = vec![0u8; 80];
        huge.extend_from_slice(&1_000_000_000u32.to_le_bytes());
        assert!(matches!(
            parse_stl(&huge, path()),
            Err(MeshError::Invalid { problem: MeshProblem::TooBig { .. }, .. })
        ));
        let mut short = vec![0u8; 80];
        short.extend_from_slice(&10u32.to_le_bytes());
        short.extend_from_slice(&[0u8; 100]);
        assert!(matches!(parse_stl(&short, path()), Err(MeshError::Parse { .. })));
        // NaN vertex, wrong index, empty, garbage.
        let nan = "v nan 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n";
        assert!(matches!(
            parse_obj(nan.as_bytes(), path()),
            Err(MeshError::Invalid { problem: MeshProblem::NonFinite { .. }, .. }) | Err(MeshError::Parse { .. })
        ));
        let bad_index = "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n";
        assert!(parse_obj(bad_index.as_bytes(), path()).is_err());
        assert!(matches!(parse_obj(b"", path()), Err(MeshError::Invalid { problem: MeshProblem::Empty, .. })));
        assert!(parse_gltf(b"{ not json", path()).is_err());
        assert!(parse_gltf(b"glTF\x02\x00\x00\x00\xff\xff\xff\xff", path()).is_err());
        let external = br#"{"asset":{"version":"2.0"},"buffers":[{"uri":"/etc/passwd","byteLength":10}]}"#;
        let err = parse_gltf(external, path()).expect_err("external buffers refused");
        assert!(err.to_string().contains("only embedded buffers"), "{err}");
        // Every error names the file.
        assert!(err.to_string().starts_with("model.test"), "{err}");
    }

    #[test]
    fn mesh_checks_reject_bad_geometry() {
        let p = vec![[0.0; 3]; 3];
        assert_eq!(Mesh::new(p.clone(), None, vec![0, 1]), Err(MeshProblem::PartialTriangle { count: 2 }));
        assert_eq!(
            Mesh::new(p.clone(), None, vec![0, 1, 3]),
            Err(MeshProblem::IndexOutOfRange { index: 3, at: 2, vertices: 3 })
        );
        assert_eq!(
            Mesh::new(p, Some(vec![[0.0; 3]]), vec![0, 1, 2]),
            Err(MeshProblem::NormalCount { normals: 1, positions: 3 })
        );
    }

    /// Found by the `mesh` fuzz target: a POSITION attribute naming an
    /// accessor that does not exist panicked gltf-json's validation.
    #[test]
    fn a_gltf_position_naming_a_missing_accessor_is_an_error_not_a_panic() {
        let json = br#"{"asset":{"version":"2.0"},"accessors":[{"componentType":5126,"count":3,"type":"VEC3","min":[0,0,0],"max":[1,1,0]}],
            "meshes":[{"primitives":[{"attributes":{"POSITION":1}}]}]}"#;
        let err = parse_gltf(json, path()).expect_err("refused");
        assert!(err.to_string().contains("POSITION names accessor 1 of 1"), "{err}");
    }

    /// Found by the `mesh` fuzz target: a POSITION accessor of VEC4 u32
    /// tripped gltf's reader assertions.
    #[test]
    fn a_gltf_accessor_of_the_wrong_shape_is_an_error_not_a_panic() {
        let encoded = encode_base64(&[0u8; 96]);
        let json = format!(
            r#"{{"asset":{{"version":"2.0"}},"buffers":[{{"uri":"data:application/octet-stream;base64,{encoded}","byteLength":96}}],
            "bufferViews":[{{"buffer":0,"byteLength":96}}],
            "accessors":[{{"bufferView":0,"componentType":5125,"count":6,"type":"VEC4","min":[0,0,0],"max":[1,1,0]}}],
            "meshes":[{{"primitives":[{{"attributes":{{"POSITION":0}}}}]}}]}}"#
        );
        let err = parse_gltf(json.as_bytes(), path()).expect_err("refused");
        assert!(err.to_string().contains("POSITION accessor 0 is Vec4 of U32"), "{err}");
        // Also found by it: an accessor of no elements overflowed the reader's arithmetic.
        let empty = json.replace(
            r#""componentType":5125,"count":6,"type":"VEC4""#,
            r#""componentType":5126,"count":0,"type":"VEC3""#,
        );
        let err = parse_gltf(empty.as_bytes(), path()).expect_err("refused");
        assert!(err.to_string().contains("holds 0 elements"), "{err}");
    }

    #[test]
    fn embedded_gltf_loads() {
        // One triangle, positions only, in a base64 data URI.
        let mut bin = Vec::new();
        for v in [[0f32, 0., 0.], [1., 0., 0.], [0., 1., 0.]] {
            for c in v {
                bin.extend_from_slice(&c.to_le_bytes());
            }
        }
        let encoded = encode_base64(&bin);
        let json = format!(
            r#"{{"asset":{{"version":"2.0"}},"buffers":[{{"uri":"data:application/octet-stream;base64,{encoded}","byteLength":36}}],
            "bufferViews":[{{"buffer":0,"byteLength":36}}],
            "accessors":[{{"bufferView":0,"componentType":5126,"count":3,"type":"VEC3","min":[0,0,0],"max":[1,1,0]}}],
            "meshes":[{{"primitives":[{{"attributes":{{"POSITION":0}}}}]}}]}}"#
        );
        let mesh = parse_gltf(json.as_bytes(), path()).expect("gltf parses");
        assert_eq!(mesh.triangle_count(), 1);
        assert_eq!(mesh.positions[1], [1.0, 0.0, 0.0]);
    }

    fn encode_base64(data: &[u8]) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in data.chunks(3) {
            let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
            let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}
