//! The TLV machinery both directions share: a bounds-checked reader of parameters with the
//! unrecognized-parameter rules of RFC 5354 §3, and a writer that back-patches lengths and pads.

use super::error::{CauseCode, DecodeError, DecodeErrorKind, EncodeError};
use super::param::ParamType;

/// Rounds up to a multiple of 4.
#[inline]
pub(crate) const fn pad4(n: usize) -> usize {
    (n + 3) & !3
}

/// One parameter as found in a message: its type, where it starts, and its bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tlv<'a> {
    /// Parameter type as on the wire (action bits included).
    pub ty: u16,
    /// Offset of the TLV header within the message.
    pub offset: usize,
    /// Header and value, without padding.
    pub raw: &'a [u8],
}

impl<'a> Tlv<'a> {
    /// The value (after the 4-byte header).
    #[inline]
    pub fn value(&self) -> &'a [u8] {
        &self.raw[4..]
    }

    /// Offset of the value within the message.
    #[inline]
    pub fn value_offset(&self) -> usize {
        self.offset + 4
    }

    /// An Invalid Values error echoing this TLV.
    #[cold]
    pub fn invalid(&self, param: &'static str, reason: impl Into<String>) -> DecodeError {
        DecodeError::new(
            DecodeErrorKind::InvalidValue {
                param,
                reason: reason.into(),
            },
            self.offset,
        )
        .with_cause(CauseCode::INVALID_VALUES, self.raw)
    }

    /// The value must hold at least `n` bytes.
    #[inline]
    pub fn need(&self, n: usize, param: &'static str) -> Result<&'a [u8], DecodeError> {
        let v = self.value();
        if v.len() < n {
            return Err(self.invalid(param, format!("value has {} bytes, needs {n}", v.len())));
        }
        Ok(v)
    }

    /// Error for a known parameter type in a place that does not allow it.
    pub fn unexpected(&self, context: &'static str) -> DecodeError {
        DecodeError::new(
            DecodeErrorKind::UnexpectedParameter {
                ty: self.ty,
                name: ParamType(self.ty).name().unwrap_or("?"),
                context,
            },
            self.offset,
        )
        .with_cause(CauseCode::INVALID_VALUES, self.raw)
    }
}

/// A parameter that was skipped because its type is unknown and its action bits say "skip"
/// (RFC 5354 §3, bits 10 and 11).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedParameter {
    /// Offset of the TLV within the message.
    pub offset: usize,
    /// The TLV (header and value, without padding).
    pub tlv: Vec<u8>,
    /// Whether the sender asked to be told (action bits 11).
    pub report: bool,
}

/// Decoding state shared by all parameters of one message: the unknown parameters skipped so far.
#[derive(Default, Debug)]
pub(crate) struct Ctx {
    pub skipped: Vec<SkippedParameter>,
}

/// Iterates the parameters inside `buf[start..end]`, where `buf` is the whole message (so offsets
/// are message offsets). Applies RFC 5354 §3 to parameter types the caller does not know: the
/// caller passes every parameter to [`Params::next`], which yields only the known ones.
pub(crate) struct Params<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Params<'a> {
    pub fn new(buf: &'a [u8], start: usize, end: usize) -> Self {
        debug_assert!(start <= end && end <= buf.len());
        Self {
            buf,
            pos: start,
            end,
        }
    }

    /// The parameters inside a TLV's value.
    pub fn inside(buf: &'a [u8], tlv: &Tlv<'a>, skip: usize) -> Self {
        let start = (tlv.value_offset() + skip).min(tlv.offset + tlv.raw.len());
        Self::new(buf, start, tlv.offset + tlv.raw.len())
    }

    /// The next TLV, framing-checked, whatever its type. `None` at the end.
    fn next_raw(&mut self) -> Option<Result<Tlv<'a>, DecodeError>> {
        // Up to 3 bytes at the end of a container are padding the sender counted in (tolerated).
        if self.end.saturating_sub(self.pos) < 4 {
            return None;
        }
        let b = &self.buf[self.pos..self.end];
        let ty = u16::from_be_bytes([b[0], b[1]]);
        let len = u16::from_be_bytes([b[2], b[3]]) as usize;
        if len < 4 {
            let at = self.pos;
            self.pos = self.end;
            return Some(Err(DecodeError::new(
                DecodeErrorKind::ParameterTooShort { ty, length: len },
                at,
            )));
        }
        if len > b.len() {
            let at = self.pos;
            self.pos = self.end;
            return Some(Err(DecodeError::new(
                DecodeErrorKind::ParameterOverrun {
                    ty,
                    length: len,
                    available: b.len(),
                },
                at,
            )));
        }
        let tlv = Tlv {
            ty,
            offset: self.pos,
            raw: &b[..len],
        };
        // The padding after the last parameter may lie beyond the container's length
        // (RFC 5354 §2: a container does not count its last parameter's padding).
        self.pos = (self.pos + pad4(len)).min(self.end);
        Some(Ok(tlv))
    }

    /// The next parameter whose type is a known RSerPool parameter type (RFC 5354 Table 1, plus
    /// any type in `extra`). Unknown types are handled by their action bits: skipped (and recorded
    /// in `ctx`, for a report where bits 11 ask for one) or turned into an error.
    pub fn next(&mut self, ctx: &mut Ctx, extra: &[u16]) -> Option<Result<Tlv<'a>, DecodeError>> {
        loop {
            let tlv = match self.next_raw()? {
                Ok(t) => t,
                Err(e) => return Some(Err(e)),
            };
            if ParamType(tlv.ty).is_rfc5354() || extra.contains(&tlv.ty) {
                return Some(Ok(tlv));
            }
            match tlv.ty >> 14 {
                0b00 | 0b01 => {
                    self.pos = self.end;
                    let e = DecodeError::new(
                        DecodeErrorKind::UnrecognizedParameter(tlv.ty),
                        tlv.offset,
                    )
                    .with_cause(CauseCode::UNRECOGNIZED_PARAMETER, tlv.raw);
                    return Some(Err(if tlv.ty >> 14 == 0 { e.silent() } else { e }));
                }
                bits => ctx.skipped.push(SkippedParameter {
                    offset: tlv.offset,
                    tlv: tlv.raw.to_vec(),
                    report: bits == 0b11,
                }),
            }
        }
    }
}

/// Reads a big-endian u32 at `off` of `v` (the caller has checked the length).
#[inline]
pub(crate) fn be32(v: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([v[off], v[off + 1], v[off + 2], v[off + 3]])
}

/// Reads a big-endian u16 at `off` of `v` (the caller has checked the length).
#[inline]
pub(crate) fn be16(v: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([v[off], v[off + 1]])
}

/// Records a single-occurrence parameter, refusing a second one.
pub(crate) fn once<T>(
    slot: &mut Option<T>,
    value: T,
    tlv: &Tlv<'_>,
    name: &'static str,
    context: &'static str,
) -> Result<(), DecodeError> {
    if slot.is_some() {
        return Err(duplicate(tlv, name, context));
    }
    *slot = Some(value);
    Ok(())
}

/// A second occurrence of a parameter that may occur once.
pub(crate) fn duplicate(tlv: &Tlv<'_>, name: &'static str, context: &'static str) -> DecodeError {
    DecodeError::new(
        DecodeErrorKind::DuplicateParameter { name, context },
        tlv.offset,
    )
    .with_cause(CauseCode::INVALID_VALUES, tlv.raw)
}

/// A mandatory parameter that is absent. Inside a container the container is echoed as the TLV
/// holding the invalid value; at message level there is nothing well-formed to echo.
pub(crate) fn missing(
    missing: &'static str,
    context: &'static str,
    container: Option<&Tlv<'_>>,
) -> DecodeError {
    let kind = DecodeErrorKind::MissingParameter { missing, context };
    match container {
        Some(t) => DecodeError::new(kind, t.offset).with_cause(CauseCode::INVALID_VALUES, t.raw),
        None => DecodeError::new(kind, 0),
    }
}

/// Output buffer with length back-patching.
///
/// RFC 5354 §2 / §4: every TLV is padded to 4 bytes with zeros; a length field counts neither
/// the TLV's own padding nor, for a container (message or nested parameter), the padding of its
/// last parameter. The writer tracks that trailing padding so containers can leave it out.
pub(crate) struct Writer<'o> {
    out: &'o mut Vec<u8>,
    trailing_pad: usize,
}

impl<'o> Writer<'o> {
    pub fn new(out: &'o mut Vec<u8>) -> Self {
        Self {
            out,
            trailing_pad: 0,
        }
    }

    #[inline]
    pub fn u16(&mut self, v: u16) {
        self.out.extend_from_slice(&v.to_be_bytes());
        self.trailing_pad = 0;
    }

    #[inline]
    pub fn u32(&mut self, v: u32) {
        self.out.extend_from_slice(&v.to_be_bytes());
        self.trailing_pad = 0;
    }

    #[inline]
    pub fn bytes(&mut self, v: &[u8]) {
        self.out.extend_from_slice(v);
        self.trailing_pad = 0;
    }

    /// Writes a TLV: header, whatever `body` writes, its length, then zero padding.
    #[inline]
    pub fn tlv(
        &mut self,
        ty: u16,
        what: &'static str,
        body: impl FnOnce(&mut Self) -> Result<(), EncodeError>,
    ) -> Result<(), EncodeError> {
        let start = self.out.len();
        self.out.extend_from_slice(&ty.to_be_bytes());
        self.out.extend_from_slice(&[0, 0]);
        self.trailing_pad = 0;
        body(self)?;
        let len = self.out.len() - start - self.trailing_pad;
        if len > 0xffff {
            return Err(EncodeError::TooLong { what, length: len });
        }
        self.out[start + 2..start + 4].copy_from_slice(&(len as u16).to_be_bytes());
        // Drop the inner trailing padding before padding this TLV (same bytes, recomputed).
        self.out.truncate(start + len);
        let pad = pad4(len) - len;
        self.out.extend_from_slice(&[0u8; 3][..pad]);
        self.trailing_pad = pad;
        Ok(())
    }

    /// Writes a message: type, flags, back-patched length, body, then zero padding to a multiple
    /// of 4 bytes. RFC 5354 §4: "the sender MUST pad the message with all zero bytes and this
    /// padding is not included in the Message Length field". SCTP's own chunk padding does not
    /// help: the receiving application gets the user message without it, and RSPLIB's parser
    /// rejects a message whose last parameter's padding is missing.
    pub fn message(
        &mut self,
        ty: u8,
        flags: u8,
        body: impl FnOnce(&mut Self) -> Result<(), EncodeError>,
    ) -> Result<(), EncodeError> {
        let start = self.out.len();
        self.out.extend_from_slice(&[ty, flags, 0, 0]);
        self.trailing_pad = 0;
        body(self)?;
        let len = self.out.len() - start - self.trailing_pad;
        if len > 0xffff {
            return Err(EncodeError::TooLong {
                what: "message",
                length: len,
            });
        }
        self.out[start + 2..start + 4].copy_from_slice(&(len as u16).to_be_bytes());
        // The last parameter's padding is already there (`trailing_pad` bytes of zeros); a
        // message with no parameters ends on a 4-byte boundary anyway.
        debug_assert_eq!(pad4(len) - len, self.trailing_pad);
        self.trailing_pad = 0;
        Ok(())
    }
}

/// Frames a message: checks the header and length field against the received bytes and returns
/// the message's bytes (without trailing padding).
pub(crate) fn frame(buf: &[u8], fixed: usize) -> Result<&[u8], DecodeError> {
    if buf.len() < 4 {
        return Err(DecodeError::new(
            DecodeErrorKind::Truncated {
                what: "message header",
                needed: 4,
                available: buf.len(),
            },
            0,
        ));
    }
    let len = be16(buf, 2) as usize;
    if len > buf.len() {
        return Err(DecodeError::new(
            DecodeErrorKind::MessageLengthExceedsData {
                length: len,
                available: buf.len(),
            },
            0,
        ));
    }
    if len < fixed {
        return Err(DecodeError::new(
            DecodeErrorKind::MessageTooShort {
                length: len,
                minimum: fixed,
            },
            0,
        ));
    }
    if buf.len() - len > 3 {
        return Err(DecodeError::new(
            DecodeErrorKind::TrailingData {
                extra: buf.len() - len,
            },
            len,
        ));
    }
    Ok(&buf[..len])
}

/// The message's length according to its header, for framing a byte stream (TCP mapping):
/// `None` until 4 bytes are there.
pub fn message_length(buf: &[u8]) -> Option<usize> {
    (buf.len() >= 4).then(|| be16(buf, 2) as usize)
}

/// An unrecognized message type: RFC 5354 §4 action bits decide whether to report it.
pub(crate) fn unrecognized_message(msg: &[u8]) -> DecodeError {
    let ty = msg[0];
    let e = DecodeError::new(DecodeErrorKind::UnrecognizedMessage(ty), 0)
        .with_cause(CauseCode::UNRECOGNIZED_MESSAGE, msg);
    // 01 = discard and report; 00 = discard; 10/11 are reserved: discard without a report.
    if ty >> 6 == 0b01 { e } else { e.silent() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_errors_say_what_is_wrong() {
        let k = |b: &[u8], fixed| frame(b, fixed).unwrap_err().kind.clone();
        assert!(matches!(
            k(&[1, 0], 4),
            DecodeErrorKind::Truncated {
                needed: 4,
                available: 2,
                ..
            }
        ));
        assert!(matches!(
            k(&[1, 0, 0, 0], 4),
            DecodeErrorKind::MessageTooShort {
                length: 0,
                minimum: 4
            }
        ));
        assert!(matches!(
            k(&[1, 0, 0, 8, 0, 0], 4),
            DecodeErrorKind::MessageLengthExceedsData {
                length: 8,
                available: 6
            }
        ));
        assert!(matches!(
            k(&[1, 0, 0, 4, 0, 0, 0, 0], 4),
            DecodeErrorKind::TrailingData { extra: 4 }
        ));
        assert!(matches!(
            k(&[1, 0, 0, 8, 0, 0, 0, 0], 12),
            DecodeErrorKind::MessageTooShort {
                length: 8,
                minimum: 12
            }
        ));
        // Up to 3 bytes of padding after the message are fine.
        assert_eq!(
            frame(&[1, 0, 0, 5, 9, 0, 0, 0], 4).unwrap(),
            &[1, 0, 0, 5, 9]
        );
    }

    #[test]
    fn parameters_are_bounds_checked() {
        let mut ctx = Ctx::default();
        // A TLV of length 2 (< 4), then one that runs past the container.
        for (buf, want) in [
            (&[0u8, 9, 0, 2, 0, 0, 0, 0][..], "length 2"),
            (&[0u8, 9, 0, 12, 0, 0, 0, 0][..], "runs past"),
        ] {
            let e = Params::new(buf, 0, buf.len())
                .next(&mut ctx, &[])
                .unwrap()
                .unwrap_err();
            assert!(e.to_string().contains(want), "{e}");
            assert_eq!(e.offset, 0);
        }
        // Trailing bytes shorter than a TLV header are padding.
        let buf = [0u8, 9, 0, 5, b'x', 0, 0, 0, 0, 0];
        let mut it = Params::new(&buf, 0, buf.len());
        assert_eq!(
            it.next(&mut ctx, &[]).unwrap().unwrap().raw,
            &[0, 9, 0, 5, b'x']
        );
        assert!(it.next(&mut ctx, &[]).is_none());
    }

    #[test]
    fn writer_pads_and_backpatches() {
        let mut out = Vec::new();
        let mut w = Writer::new(&mut out);
        w.tlv(0x0a, "outer", |w| {
            w.u32(7);
            w.tlv(0x09, "inner", |w| {
                w.bytes(b"abcde");
                Ok(())
            })
        })
        .unwrap();
        // Outer counts 4 + 4 + 9 (inner's padding excluded), then is padded itself.
        assert_eq!(
            out,
            [
                0, 0x0a, 0, 17, 0, 0, 0, 7, 0, 9, 0, 9, b'a', b'b', b'c', b'd', b'e', 0, 0, 0
            ]
        );
    }
}
