//! Text kept for a long time but read rarely, deflated: the diffs of an app's recent
//! syncs, which only the status page and the API show. A diff of a thousand changed
//! objects is tens of KiB of similar lines; deflated it is a few KiB, and holding it
//! does not pin the allocator's large pages between syncs. The codec is shared with
//! [`crate::manifest::Packed`], the last synced render kept the same way.

use std::io::{Read as _, Write as _};

/// An encoder deflating into memory at the level everything kept deflated uses: fast,
/// as deflating follows every sync.
pub(crate) fn encoder() -> flate2::write::DeflateEncoder<Vec<u8>> {
    flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast())
}

/// What `encoder` deflated, without spare capacity.
pub(crate) fn finish(encoder: flate2::write::DeflateEncoder<Vec<u8>>) -> Box<[u8]> {
    // Writing into a Vec does not fail.
    encoder.finish().unwrap_or_default().into_boxed_slice()
}

/// Inflates bytes an [`encoder`] deflated.
pub(crate) fn decoder(bytes: &[u8]) -> flate2::read::DeflateDecoder<&[u8]> {
    flate2::read::DeflateDecoder::new(bytes)
}

/// Deflated UTF-8 text; [`DeflatedText::text`] gives it back. Serializes as the text.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DeflatedText {
    bytes: Box<[u8]>,
    len: usize,
}

impl DeflatedText {
    /// Deflates `text`.
    pub fn new(text: &str) -> Self {
        let mut encoder = encoder();
        // Writing into a Vec does not fail.
        let _ = encoder.write_all(text.as_bytes());
        Self {
            bytes: finish(encoder),
            len: text.len(),
        }
    }

    /// The text as it was given.
    pub fn text(&self) -> String {
        let mut bytes = Vec::with_capacity(self.len);
        // Bytes this type deflated inflate back to the UTF-8 text it was given.
        let _ = decoder(&self.bytes).read_to_end(&mut bytes);
        String::from_utf8(bytes).unwrap_or_default()
    }

    /// The length of the text in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the text is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes held.
    pub fn deflated_len(&self) -> usize {
        self.bytes.len()
    }
}

impl From<&str> for DeflatedText {
    fn from(text: &str) -> Self {
        Self::new(text)
    }
}

impl std::fmt::Debug for DeflatedText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DeflatedText({} bytes in {})",
            self.len,
            self.bytes.len()
        )
    }
}

impl serde::Serialize for DeflatedText {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_comes_back_as_given() {
        for text in [
            "",
            "a",
            "é ☃ 😀\n",
            &"-  image: web:1\n+  image: web:2\n".repeat(50),
        ] {
            let deflated = DeflatedText::new(text);
            assert_eq!(deflated.text(), text);
            assert_eq!(deflated.len(), text.len());
            assert_eq!(deflated.is_empty(), text.is_empty());
        }
    }

    #[test]
    fn a_diff_of_many_similar_objects_is_held_in_a_fraction_of_its_size() {
        use std::fmt::Write as _;
        let mut diff = String::new();
        for i in 0..1000 {
            let _ = write!(
                diff,
                "# create ConfigMap/bench/config-{i}\n--- live\n+++ desired\n@@ -0,0 +1,4 @@\n+data:\n+  key: value-{i}\n+kind: ConfigMap\n+metadata: {{name: config-{i}}}\n\n"
            );
        }
        let deflated = DeflatedText::new(&diff);
        assert!(
            deflated.deflated_len() * 8 < diff.len(),
            "{} of {}",
            deflated.deflated_len(),
            diff.len()
        );
    }

    #[test]
    fn serializes_as_the_text() {
        let json = serde_json::to_string(&DeflatedText::new("+ a\n- b\n")).expect("serializes");
        assert_eq!(json, r#""+ a\n- b\n""#);
    }
}
