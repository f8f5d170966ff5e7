//! Debezium's `decimal.handling.mode=precise` as Kafka's `JsonConverter`
//! writes it without schemas: Connect's `Decimal` is the unscaled value's
//! two's-complement bytes, big-endian, as few as it takes (Java's
//! `BigInteger.toByteArray`), in base64; `io.debezium.data.VariableScaleDecimal`
//! (a `numeric` declared without a scale) is `{"scale":…,"value":…}`.

use base64::Engine as _;

/// An exact decimal's sign, digits and scale (digits after the point).
struct Decimal {
    negative: bool,
    /// Without the point, leading zeros kept.
    digits: Vec<u8>,
    scale: usize,
}

fn parse(text: &str) -> Option<Decimal> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (whole, fraction) = body.split_once('.').unwrap_or((body, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let digits: Vec<u8> = whole.bytes().chain(fraction.bytes()).collect();
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(Decimal {
        negative,
        digits,
        scale: fraction.len(),
    })
}

impl Decimal {
    /// To `scale` digits, rounding half up (away from zero) as Java's
    /// `RoundingMode.HALF_UP` when digits are dropped.
    fn rescale(mut self, scale: usize) -> Decimal {
        if scale >= self.scale {
            self.digits
                .resize(self.digits.len() + scale - self.scale, b'0');
        } else {
            let keep = self.digits.len() - (self.scale - scale);
            let round_up = self.digits.get(keep).is_some_and(|&d| d >= b'5');
            self.digits.truncate(keep);
            if round_up {
                let mut at = self.digits.len();
                loop {
                    if at == 0 {
                        self.digits.insert(0, b'1');
                        break;
                    }
                    at -= 1;
                    if self.digits[at] == b'9' {
                        self.digits[at] = b'0';
                    } else {
                        self.digits[at] += 1;
                        break;
                    }
                }
            }
        }
        self.scale = scale;
        self
    }

    /// Java's `stripTrailingZeros`, then no negative scale.
    fn strip_trailing_zeros(mut self) -> Decimal {
        while self.scale > 0 && self.digits.last() == Some(&b'0') {
            self.digits.pop();
            self.scale -= 1;
        }
        self
    }

    /// `BigInteger.toByteArray` of the unscaled value.
    fn unscaled_bytes(&self) -> Vec<u8> {
        // Magnitude, big-endian base 256.
        let mut magnitude: Vec<u8> = Vec::new();
        for &d in &self.digits {
            let mut carry = u32::from(d - b'0');
            for byte in magnitude.iter_mut().rev() {
                let v = u32::from(*byte) * 10 + carry;
                *byte = (v & 0xff) as u8;
                carry = v >> 8;
            }
            while carry > 0 {
                magnitude.insert(0, (carry & 0xff) as u8);
                carry >>= 8;
            }
        }
        let zero = magnitude.iter().all(|&b| b == 0);
        if zero {
            return vec![0];
        }
        let start = magnitude.iter().position(|&b| b != 0).unwrap_or(0);
        let mut bytes = magnitude.split_off(start);
        if !self.negative {
            if bytes.first().is_some_and(|&b| b & 0x80 != 0) {
                bytes.insert(0, 0);
            }
            return bytes;
        }
        // Two's complement: invert and add one.
        for b in bytes.iter_mut() {
            *b = !*b;
        }
        for b in bytes.iter_mut().rev() {
            let (v, overflow) = b.overflowing_add(1);
            *b = v;
            if !overflow {
                break;
            }
        }
        if bytes.first().is_some_and(|&b| b & 0x80 == 0) {
            bytes.insert(0, 0xff);
        }
        // The minimal form: drop a leading 0xff the next byte's sign repeats.
        while bytes.len() > 1 && bytes[0] == 0xff && bytes[1] & 0x80 != 0 {
            bytes.remove(0);
        }
        bytes
    }
}

/// `text` as Connect's Decimal at `scale` (a column's declared scale, or
/// money's fraction digits); `None` for what has no such form (NaN and
/// infinities: Debezium stops on them in this mode).
pub(super) fn write_fixed(text: &str, scale: usize, out: &mut Vec<u8>) -> Option<()> {
    let decimal = parse(text)?.rescale(scale);
    out.push(b'"');
    out.extend_from_slice(
        base64::engine::general_purpose::STANDARD
            .encode(decimal.unscaled_bytes())
            .as_bytes(),
    );
    out.push(b'"');
    Some(())
}

/// `text` as a VariableScaleDecimal struct.
pub(super) fn write_variable(text: &str, out: &mut Vec<u8>) -> Option<()> {
    let decimal = parse(text)?.strip_trailing_zeros();
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(b"{\"scale\":");
    out.extend_from_slice(buf.format(decimal.scale).as_bytes());
    out.extend_from_slice(b",\"value\":\"");
    out.extend_from_slice(
        base64::engine::general_purpose::STANDARD
            .encode(decimal.unscaled_bytes())
            .as_bytes(),
    );
    out.extend_from_slice(b"\"}");
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unscaled(text: &str, scale: usize) -> Vec<u8> {
        parse(text)
            .map(|d| d.rescale(scale).unscaled_bytes())
            .unwrap_or_default()
    }

    #[test]
    fn unscaled_values_are_java_big_integer_bytes() {
        assert_eq!(unscaled("0", 0), [0]);
        assert_eq!(unscaled("1.5", 3), [0x05, 0xdc]); // 1500
        assert_eq!(unscaled("127", 0), [0x7f]);
        assert_eq!(unscaled("128", 0), [0x00, 0x80]);
        assert_eq!(unscaled("-1", 0), [0xff]);
        assert_eq!(unscaled("-128", 0), [0x80]);
        assert_eq!(unscaled("-129", 0), [0xff, 0x7f]);
        assert_eq!(unscaled("-0.001", 3), [0xff]);
        assert_eq!(unscaled("1.005", 2), [0x65]); // 101, half up
        assert_eq!(unscaled("-9.995", 2), [0xfc, 0x18]); // -1000
    }

    #[test]
    fn variable_scale_strips_trailing_zeros() {
        let mut out = Vec::new();
        write_variable("12.500", &mut out);
        assert_eq!(out, br#"{"scale":1,"value":"fQ=="}"#);
        out.clear();
        assert_eq!(write_variable("NaN", &mut out), None);
    }
}
