//! scopecast-shaders: every WGSL shader of scopecast, embedded into the binary
//! at build time (`include_str!`) so that no shader is ever read from disk at
//! run time, and validated by naga in a CPU-only test so a broken shader fails
//! `cargo test` on machines without a GPU.
//!
//! It holds shader text and nothing else. It must never depend on wgpu, on the
//! engine, on transport or on any IO: the compositor (in `scopecast-engine`)
//! owns pipelines and bind groups and only borrows the source text from here.

/// A named WGSL source.
#[derive(Debug, Clone, Copy)]
pub struct Shader {
    /// File name under `shaders/shader/`.
    pub name: &'static str,
    /// WGSL text.
    pub source: &'static str,
}

/// Video (optionally undistorted) with the overlay (optionally distorted) over it.
pub const COMPOSE: Shader = Shader {
    name: "compose.wgsl",
    source: concat!(include_str!("../shader/compose_common.wgsl"), include_str!("../shader/compose.wgsl")),
};
/// Anatomy meshes into the overlay target.
pub const MESH: Shader = Shader { name: "mesh.wgsl", source: include_str!("../shader/mesh.wgsl") };
/// Anti-aliased strokes, arrows and text.
pub const ANNOTATION: Shader = Shader { name: "annotation.wgsl", source: include_str!("../shader/annotation.wgsl") };
/// The machine-readable timecode strip.
pub const TIMECODE: Shader = Shader {
    name: "timecode.wgsl",
    source: concat!(include_str!("../shader/timecode_cells.wgsl"), include_str!("../shader/timecode.wgsl")),
};
/// RGBA to I420 (BT.709 limited range) for the encoder.
pub const RGBA_TO_I420: Shader = Shader {
    name: "rgba_to_i420.wgsl",
    source: concat!(include_str!("../shader/bt709_i420.wgsl"), include_str!("../shader/rgba_to_i420.wgsl")),
};
/// Software adapters' one pass: compose, annotation layer, timecode and I420.
pub const COMPOSE_FUSED: Shader = Shader {
    name: "compose_fused.wgsl",
    source: concat!(
        include_str!("../shader/compose_common.wgsl"),
        include_str!("../shader/bt709_i420.wgsl"),
        include_str!("../shader/timecode_cells.wgsl"),
        include_str!("../shader/compose_fused.wgsl")
    ),
};
/// Software adapters' CPU plan: the overlay and annotations as one packed layer.
pub const COMPOSE_LAYER: Shader = Shader {
    name: "compose_layer.wgsl",
    source: concat!(include_str!("../shader/compose_common.wgsl"), include_str!("../shader/compose_layer.wgsl")),
};

/// The station's monitor: the composited frame and the HUD onto the window.
pub const DISPLAY: Shader = Shader { name: "display.wgsl", source: include_str!("../shader/display.wgsl") };

/// Files that are only ever prepended to the shaders above (shared bindings
/// and functions; WGSL has no includes); validated as part of them.
pub const PARTS: [&str; 3] = ["compose_common.wgsl", "bt709_i420.wgsl", "timecode_cells.wgsl"];

/// Every shader, for validation.
pub const ALL: [Shader; 8] = [COMPOSE, MESH, ANNOTATION, TIMECODE, RGBA_TO_I420, COMPOSE_FUSED, COMPOSE_LAYER, DISPLAY];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shader_parses_and_validates_with_naga() {
        for shader in ALL {
            let module = naga::front::wgsl::parse_str(shader.source)
                .unwrap_or_else(|e| panic!("{}: {}", shader.name, e.emit_to_string(shader.source)));
            naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::default())
                .validate(&module)
                .unwrap_or_else(|e| panic!("{}: {}", shader.name, e.emit_to_string(shader.source)));
        }
    }

    #[test]
    fn every_shader_file_is_listed() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shader");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .expect("shader folder")
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .filter(|n| n.ends_with(".wgsl"))
            .collect();
        on_disk.sort();
        let mut listed: Vec<String> =
            ALL.iter().map(|s| s.name.to_string()).chain(PARTS.iter().map(|p| p.to_string())).collect();
        listed.sort();
        assert_eq!(on_disk, listed, "a WGSL file that is not in ALL or PARTS is never validated");
    }
}
