//! CRC-64 as OpenIGTLink uses it (the ECMA-182 polynomial,
//! 0x42F0E1EBA9EA3693, initial value 0, no reflection, no final xor), over
//! the message body. Table-driven, one byte at a time.

/// The ECMA-182 polynomial (OpenIGTLink's `igtl_crc64.c`).
const POLY: u64 = 0x42F0_E1EB_A9EA_3693;

const fn table() -> [u64; 256] {
    let mut table = [0u64; 256];
    let mut byte = 0;
    while byte < 256 {
        let mut crc = (byte as u64) << 56;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & (1 << 63) != 0 { (crc << 1) ^ POLY } else { crc << 1 };
            bit += 1;
        }
        table[byte] = crc;
        byte += 1;
    }
    table
}

static TABLE: [u64; 256] = table();

/// The CRC-64 of `bytes`, continuing from `crc` (0 to start).
pub fn crc64_update(mut crc: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        crc = TABLE[((crc >> 56) as u8 ^ b) as usize] ^ (crc << 8);
    }
    crc
}

/// The CRC-64 of `bytes`.
pub fn crc64(bytes: &[u8]) -> u64 {
    crc64_update(0, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_ecma_182_check_value() {
        // CRC-64/ECMA-182 (non-reflected, init 0, xorout 0): check value of "123456789".
        assert_eq!(crc64(b"123456789"), 0x6C40_DF5F_0B49_7347);
        assert_eq!(crc64(b""), 0);
        let whole = crc64(b"OpenIGTLink body");
        assert_eq!(crc64_update(crc64(b"OpenIGTLink"), b" body"), whole, "incremental");
    }
}
