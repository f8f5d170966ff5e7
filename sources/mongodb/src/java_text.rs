//! The Java library texts Debezium's JSON writer is made of: `Double.toString`
//! (through the driver's `JsonDoubleHelper`), `Decimal128.toString`, the ISO
//! instant of `DateTimeFormatter.ISO_OFFSET_DATE_TIME`, and which UTF-16 code
//! units its string writer copies unescaped.

use std::fmt::Write as _;
use std::sync::OnceLock;

/// `JsonDoubleHelper.toString(v)`: Java's `Double.toString(v)` with `E+`
/// for a positive exponent (`1.0E+20`).
///
/// The digits are Java 19 and later's (the shortest decimal that reads back
/// as `v`, the closest of those, two digits where one would do only if two
/// are closer). Java 17's `Double.toString` sometimes prints a longer or
/// off-by-one digit string instead (JDK-4511638, e.g. `9.999999999999999E22`
/// for `1.0E23`); both read back as the same double.
pub(crate) fn write_double(v: f64, out: &mut String) {
    if v.is_nan() {
        out.push_str("NaN");
        return;
    }
    if v.is_infinite() {
        out.push_str(if v > 0.0 { "Infinity" } else { "-Infinity" });
        return;
    }
    if v.is_sign_negative() {
        out.push('-');
    }
    if v == 0.0 {
        out.push_str("0.0");
        return;
    }
    let a = v.abs();
    let (mut digits, mut exp) = scientific(&format!("{a:e}"));
    if digits.len() == 1 {
        // Java takes the closest decimal of one or two digits that reads back
        // as `a`: Rust's correctly rounded two-digit form, when it does.
        let two = format!("{a:.1e}");
        if two.parse::<f64>().ok() == Some(a) {
            (digits, exp) = scientific(&two);
        }
    }
    if let Some(even) = even_of_a_tie(a, &digits, exp) {
        digits = even;
    }
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    if (-3..7).contains(&exp) {
        // Plain notation, at least one digit after the point.
        if exp < 0 {
            out.push_str("0.");
            for _ in 0..(-exp - 1) {
                out.push('0');
            }
            out.push_str(digits);
        } else {
            let int_len = usize::try_from(exp).unwrap_or(0) + 1;
            if digits.len() <= int_len {
                out.push_str(digits);
                for _ in digits.len()..int_len {
                    out.push('0');
                }
                out.push_str(".0");
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        out.push('.');
        out.push_str(if digits.len() > 1 { &digits[1..] } else { "0" });
        out.push('E');
        if exp > 0 {
            out.push('+');
        }
        let _ = write!(out, "{exp}");
    }
}

/// When `a` lies exactly halfway between `digits` (odd) and a neighbour of
/// the same length, that neighbour: Java takes the even one of two equally
/// close shortest decimals (`2.9802322387695312E-8` for 2^-25), Rust's
/// shortest form may take the odd one.
fn even_of_a_tie(a: f64, digits: &str, exp: i32) -> Option<String> {
    let d: u64 = digits.parse().ok()?;
    if d % 2 == 0 {
        return None;
    }
    let p = exp - i32::try_from(digits.len()).ok()? + 1;
    // a = m·2^e exactly; a tie means 2a = (2d ± 1)·10^p.
    let bits = a.to_bits();
    let (m, e) = match (bits >> 52) & 0x7ff {
        0 => (bits & ((1 << 52) - 1), -1074),
        biased => (
            bits & ((1 << 52) - 1) | (1 << 52),
            i32::try_from(biased).ok()? - 1075,
        ),
    };
    let t = i32::try_from(m.trailing_zeros()).ok()?;
    let odd = u128::from(m >> t);
    if t + e + 1 != p {
        return None;
    }
    let five = 5u128.checked_pow(p.unsigned_abs())?;
    for (neighbour, twice) in [
        (d.checked_add(1)?, 2 * u128::from(d) + 1),
        (d - 1, 2 * u128::from(d) - 1),
    ] {
        let exact = if p >= 0 {
            odd == twice.checked_mul(five)?
        } else {
            odd.checked_mul(five) == Some(twice)
        };
        let text = neighbour.to_string();
        let same_length = text.len() == digits.len();
        if exact && same_length && format!("{text}e{p}").parse::<f64>().ok() == Some(a) {
            return Some(text);
        }
    }
    None
}

/// The digits (no point) and decimal exponent of Rust's `{:e}` form
/// (`1.2345e-7` → `("12345", -7)`).
fn scientific(text: &str) -> (String, i32) {
    let (mantissa, exp) = text.split_once('e').unwrap_or((text, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    (digits, exp.parse().unwrap_or(0))
}

/// `org.bson.types.Decimal128.toString()` of the 16 little-endian bytes BSON
/// stores: `NaN`, `[-]Infinity`, or the IEEE 754-2008 to-scientific-string
/// of the significand and exponent, as Java's `BigDecimal` path writes it.
pub(crate) fn decimal128_to_string(bytes: [u8; 16]) -> String {
    const NAN: u64 = 0x7c00_0000_0000_0000;
    const INFINITY: u64 = 0x7800_0000_0000_0000;
    const TWO_HIGHEST_COMBINATION_BITS: u64 = 0x6000_0000_0000_0000;
    const EXPONENT_OFFSET: i64 = 6176;
    let mut low = [0u8; 8];
    let mut high = [0u8; 8];
    low.copy_from_slice(&bytes[..8]);
    high.copy_from_slice(&bytes[8..]);
    let low = u64::from_le_bytes(low);
    let high = u64::from_le_bytes(high);
    let negative = high >> 63 == 1;
    if high & NAN == NAN {
        return "NaN".into();
    }
    if high & INFINITY == INFINITY {
        return if negative { "-Infinity" } else { "Infinity" }.into();
    }
    // In the "11" combination form the significand would start with bits
    // 100, above 10^34 - 1: the driver reads it as zero, with the exponent
    // two bits further right.
    let (biased, significand) =
        if high & TWO_HIGHEST_COMBINATION_BITS == TWO_HIGHEST_COMBINATION_BITS {
            ((high & 0x1fff_e000_0000_0000) >> 47, 0u128)
        } else {
            let sig = (u128::from(high & 0x0001_ffff_ffff_ffff) << 64) | u128::from(low);
            ((high & 0x7fff_8000_0000_0000) >> 49, sig)
        };
    let exponent = i64::try_from(biased).unwrap_or(0) - EXPONENT_OFFSET;
    let digits = significand.to_string();
    let len = i64::try_from(digits.len()).unwrap_or(0);
    let adjusted = exponent + len - 1;
    let mut out = String::with_capacity(digits.len() + 8);
    if negative {
        out.push('-');
    }
    if exponent <= 0 && adjusted >= -6 {
        if exponent == 0 {
            out.push_str(&digits);
        } else {
            let pad = -exponent - len;
            if pad >= 0 {
                out.push_str("0.");
                for _ in 0..pad {
                    out.push('0');
                }
                out.push_str(&digits);
            } else {
                let split = usize::try_from(-pad).unwrap_or(0);
                out.push_str(&digits[..split]);
                out.push('.');
                out.push_str(&digits[split..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('E');
        if adjusted > 0 {
            out.push('+');
        }
        let _ = write!(out, "{adjusted}");
    }
    out
}

/// The last millisecond the driver's relaxed writer prints as an ISO string
/// (`RelaxedExtendedJsonDateTimeConverter.LAST_MS_OF_YEAR_9999`).
pub(crate) const LAST_MS_OF_YEAR_9999: i64 = 253_402_300_799_999;

/// `ISO_OFFSET_DATE_TIME` of an instant in UTC, for `0 ≤ ms ≤`
/// [`LAST_MS_OF_YEAR_9999`]: `2023-11-14T22:13:20.12Z` (the fraction only
/// when non-zero, without trailing zeros; `None` outside that range).
pub(crate) fn iso_instant(ms: i64) -> Option<String> {
    if !(0..=LAST_MS_OF_YEAR_9999).contains(&ms) {
        return None;
    }
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    let (secs, millis) = (in_day / 1000, in_day % 1000);
    let mut out = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    if millis != 0 {
        let fraction = format!("{millis:03}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    out.push('Z');
    Some(out)
}

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The ranges of UTF-16 code units Debezium's writer copies as they are, as
/// `CdcFixtures chars` printed them on Java 17 (Unicode 13: letters, digits,
/// numbers, punctuation, symbols and space separators, but not modifier
/// letters, marks, controls, format characters, line and paragraph
/// separators, private use, surrogates or unassigned code points).
const RAW_CHARS: &str = include_str!("../tests/fixtures/java17_raw_chars.txt");

/// One bit per BMP code unit: set when it is written unescaped.
fn raw_bitmap() -> &'static [u64; 1024] {
    static BITMAP: OnceLock<Box<[u64; 1024]>> = OnceLock::new();
    BITMAP.get_or_init(|| {
        let mut bits = Box::new([0u64; 1024]);
        for (start, end) in raw_ranges(RAW_CHARS) {
            for unit in start..=end {
                bits[usize::from(unit >> 6)] |= 1 << (unit & 63);
            }
        }
        bits
    })
}

/// The `start end` hex lines of a chars fixture (other lines skipped).
pub(crate) fn raw_ranges(text: &str) -> impl Iterator<Item = (u16, u16)> + '_ {
    text.lines().filter_map(|line| {
        let (a, b) = line.split_once(' ')?;
        Some((
            u16::from_str_radix(a, 16).ok()?,
            u16::from_str_radix(b, 16).ok()?,
        ))
    })
}

/// Whether Debezium's writer copies this UTF-16 code unit unescaped.
pub(crate) fn is_raw(unit: u16) -> bool {
    raw_bitmap()[usize::from(unit >> 6)] & (1 << (unit & 63)) != 0
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn double(v: f64) -> String {
        let mut out = String::new();
        write_double(v, &mut out);
        out
    }

    #[test]
    fn doubles_take_javas_layout() {
        assert_eq!(double(0.0), "0.0");
        assert_eq!(double(-0.0), "-0.0");
        assert_eq!(double(1.0), "1.0");
        assert_eq!(double(100.0), "100.0");
        assert_eq!(double(0.001), "0.001");
        assert_eq!(double(9.999e-4), "9.999E-4");
        assert_eq!(double(9_999_999.0), "9999999.0");
        assert_eq!(double(1e7), "1.0E+7");
        assert_eq!(double(-2.5e-5), "-2.5E-5");
        assert_eq!(double(123_456_789.125), "1.23456789125E+8");
        assert_eq!(double(f64::NAN), "NaN");
        assert_eq!(double(f64::NEG_INFINITY), "-Infinity");
        // One digit would read back too, but two are closer (Java 19+).
        assert_eq!(double(f64::from_bits(1)), "4.9E-324");
        assert_eq!(double(1e23), "1.0E+23");
        // Halfway between ...312 and ...313: the even one.
        assert_eq!(double(2f64.powi(-25)), "2.9802322387695312E-8");
    }

    proptest! {
        #[test]
        fn doubles_read_back_as_themselves(bits in any::<u64>()) {
            let v = f64::from_bits(bits);
            prop_assume!(v.is_finite());
            let text = double(v).replace("E+", "E");
            prop_assert_eq!(text.parse::<f64>().ok().map(f64::to_bits), Some(bits));
        }
    }

    #[test]
    fn decimal128_special_values() {
        let mut nan = [0u8; 16];
        nan[15] = 0x7c;
        assert_eq!(decimal128_to_string(nan), "NaN");
        let mut inf = [0u8; 16];
        inf[15] = 0xf8;
        assert_eq!(decimal128_to_string(inf), "-Infinity");
    }

    #[test]
    fn iso_instants_strip_trailing_zeros_of_the_fraction() {
        assert_eq!(iso_instant(0).as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(
            iso_instant(951_782_400_120).as_deref(),
            Some("2000-02-29T00:00:00.12Z")
        );
        assert_eq!(
            iso_instant(LAST_MS_OF_YEAR_9999).as_deref(),
            Some("9999-12-31T23:59:59.999Z")
        );
        assert_eq!(iso_instant(-1), None);
        assert_eq!(iso_instant(LAST_MS_OF_YEAR_9999 + 1), None);
    }

    #[test]
    fn raw_chars_follow_the_java_17_table() {
        assert!(is_raw(u16::from(b'a')) && is_raw(0x00e9) && is_raw(0x00a0));
        // Controls, format characters, marks, separators, surrogates.
        for unit in [
            0x0000, 0x007f, 0x0085, 0x00ad, 0x0301, 0x02b0, 0x2028, 0xd83d, 0xe000,
        ] {
            assert!(!is_raw(unit), "{unit:04x}");
        }
    }
}
