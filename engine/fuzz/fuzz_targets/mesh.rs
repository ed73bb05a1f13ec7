//! The mesh loaders (OBJ, STL, glTF; the first byte picks one) on arbitrary
//! bytes: never a panic, and a mesh they accept is one the compositor can
//! draw: whole triangles, indices in range, one unit normal per vertex,
//! finite positions.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use scopecast_engine::scene::mesh::{parse_gltf, parse_obj, parse_stl};

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else { return };
    let path = Path::new("fuzz.mesh");
    let parsed = match which % 3 {
        0 => parse_obj(bytes, path),
        1 => parse_stl(bytes, path),
        _ => parse_gltf(bytes, path),
    };
    let Ok(mesh) = parsed else { return };
    assert_eq!(mesh.indices.len() % 3, 0);
    assert!(mesh.indices.iter().all(|&i| (i as usize) < mesh.positions.len()));
    assert_eq!(mesh.normals.len(), mesh.positions.len());
    assert!(mesh.positions.iter().flatten().all(|v| v.is_finite()));
});
