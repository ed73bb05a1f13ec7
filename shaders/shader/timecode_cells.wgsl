// The timecode strip: 40 square cells of side `cell` px in one row at the very
// bottom-left of the output frame. Cells 0-3 are the sync pattern 1, 0, 1, 0;
// cells 4-39 are the low 36 bits of the frame's capture_wall_ms, most
// significant bit first. A 1 is white (255, 255, 255), a 0 black. Drawn last,
// without blending, on exact pixel boundaries.

struct Timecode {
    // Cell side in pixels: round(height / 90).
    cell: u32,
    // Output height in pixels.
    height: u32,
    // Bits 32..35 of capture_wall_ms (in the low 4 bits).
    high_bits: u32,
    // Bits 0..31 of capture_wall_ms.
    low_bits: u32,
};

/// Value (0 or 1) of cell `index`.
fn cell_bit(timecode: Timecode, index: u32) -> u32 {
    if (index < 4u) {
        return select(0u, 1u, (index & 1u) == 0u);
    }
    // Cell 4 carries bit 35, cell 39 bit 0.
    let bit = 39u - index;
    if (bit >= 32u) {
        return (timecode.high_bits >> (bit - 32u)) & 1u;
    }
    return (timecode.low_bits >> bit) & 1u;
}

