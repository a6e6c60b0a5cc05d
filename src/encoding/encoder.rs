//! The compressors, each writing into a growing buffer that the caller
//! empties as it goes, so memory stays at the coder's own window.

use std::io::Write;

use super::{Coding, CopyPolicy};

pub(super) enum Encoder {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl Encoder {
    pub(super) fn new(policy: CopyPolicy) -> std::io::Result<Self> {
        Ok(match policy.coding {
            Coding::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(policy.level.clamp(1, 9) as u32),
            )),
            Coding::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(Vec::new(), policy.level)?;
                // Decoders check the frame against it: a copy damaged in
                // storage fails loudly in the client instead of silently.
                e.include_checksum(true)?;
                Encoder::Zstd(e)
            }
        })
    }

    pub(super) fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Encoder::Gzip(e) => e.write_all(bytes),
            Encoder::Zstd(e) => e.write_all(bytes),
        }
    }

    /// How many encoded bytes wait in the buffer.
    pub(super) fn buffered(&mut self) -> usize {
        self.buffer().len()
    }

    /// The encoded bytes so far, copied out at their exact size; the buffer
    /// is emptied and keeps its room. (Handing the buffer itself on would
    /// pin its spare capacity, up to as much again, in every part in
    /// flight.) The coders only ever append to it, so emptying it is safe.
    pub(super) fn take(&mut self) -> bytes::Bytes {
        let buffer = self.buffer();
        let out = bytes::Bytes::copy_from_slice(buffer);
        buffer.clear();
        out
    }

    /// Ends the stream: the last encoded bytes.
    pub(super) fn finish(self) -> std::io::Result<Vec<u8>> {
        match self {
            Encoder::Gzip(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
        }
    }

    fn buffer(&mut self) -> &mut Vec<u8> {
        match self {
            Encoder::Gzip(e) => e.get_mut(),
            Encoder::Zstd(e) => e.get_mut(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn roundtrip(coding: Coding) {
        let text = b"T1202601000001234567801  36048".repeat(5000);
        let mut e = Encoder::new(CopyPolicy { coding, level: 3 }).unwrap();
        let mut out = Vec::new();
        for chunk in text.chunks(7001) {
            e.write(chunk).unwrap();
            out.extend(e.take());
        }
        out.extend(e.finish().unwrap());
        assert!(out.len() * 10 < text.len(), "{coding:?}: {}", out.len());
        let mut back = Vec::new();
        match coding {
            Coding::Gzip => flate2::read::GzDecoder::new(&out[..])
                .read_to_end(&mut back)
                .unwrap(),
            Coding::Zstd => zstd::stream::read::Decoder::new(&out[..])
                .unwrap()
                .read_to_end(&mut back)
                .unwrap(),
        };
        assert!(back == text, "{coding:?} decodes to the original");
    }

    #[test]
    fn both_codings_decode_to_the_original_however_taken() {
        roundtrip(Coding::Gzip);
        roundtrip(Coding::Zstd);
    }
}
