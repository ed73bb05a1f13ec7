"""The scopecast timecode strip (engine/src/timecode.rs) on I420 luma planes:
40 cells of round(h / 90) px in one row at the bottom left, cells 0-3 the sync
pattern 1010, cells 4-39 the low 36 bits of the capture time in Unix ms, most
significant bit first; 1 is white (luma 235), 0 black (luma 16)."""

CELLS = 40
SYNC = (1, 0, 1, 0)
PAYLOAD_BITS = 36


def cell_size(height):
    return max(1, int(round(height / 90.0)))


def stamp_luma(y, capture_ms):
    """Writes the strip for `capture_ms` into the luma plane `y` (numpy, h x w)."""
    height = y.shape[0]
    cell = cell_size(height)
    value = capture_ms & ((1 << PAYLOAD_BITS) - 1)
    bits = list(SYNC) + [(value >> (PAYLOAD_BITS - 1 - i)) & 1 for i in range(PAYLOAD_BITS)]
    for i, bit in enumerate(bits):
        y[height - cell:height, i * cell:(i + 1) * cell] = 235 if bit else 16


def decode_luma(y):
    """The low 36 bits of the capture time, or None without the sync pattern."""
    height = y.shape[0]
    cell = cell_size(height)
    row = y[height - cell + cell // 2]
    bits = [1 if row[i * cell + cell // 2] > 125 else 0 for i in range(CELLS)]
    if tuple(bits[:4]) != SYNC:
        return None
    value = 0
    for bit in bits[4:]:
        value = (value << 1) | bit
    return value


def full_ms(low_bits, now_ms):
    """The capture time in Unix ms nearest before `now_ms` whose low 36 bits are `low_bits`."""
    span = 1 << PAYLOAD_BITS
    return now_ms - ((now_ms - low_bits) % span)
