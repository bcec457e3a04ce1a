//! 16-bit PCM WAV files: the reader behind `AudioSource::File` and the
//! writer behind `AudioSink::Record`.
//!
//! The writer keeps the header right after every write, so a recording is a
//! valid file even if the process dies mid-call.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Decoded PCM: interleaved 16-bit samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Pcm {
    pub rate: u32,
    pub channels: u16,
    pub samples: Vec<i16>,
}

/// Reads a 16-bit PCM WAV file (any rate, any channel count).
///
/// # Errors
/// The file cannot be read, or is not 16-bit PCM WAV.
pub fn read(path: &Path) -> io::Result<Pcm> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    parse(&bytes)
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("not a 16-bit PCM WAV file: {what}"))
}

fn parse(bytes: &[u8]) -> io::Result<Pcm> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(bad("no RIFF/WAVE header"));
    }
    let (mut fmt, mut data) = (None, None);
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes")) as usize;
        let body = &bytes[at + 8..(at + 8 + len).min(bytes.len())];
        match id {
            b"fmt " => fmt = Some(body),
            b"data" => data = Some(body),
            _ => {}
        }
        at += 8 + len + (len & 1);
    }
    let fmt = fmt.filter(|f| f.len() >= 16).ok_or_else(|| bad("no fmt chunk"))?;
    let format = u16::from_le_bytes([fmt[0], fmt[1]]);
    let channels = u16::from_le_bytes([fmt[2], fmt[3]]);
    let rate = u32::from_le_bytes([fmt[4], fmt[5], fmt[6], fmt[7]]);
    let bits = u16::from_le_bytes([fmt[14], fmt[15]]);
    // 1 = PCM; 0xFFFE = extensible (its sub-format is PCM for 16-bit files we accept).
    if !(format == 1 || format == 0xFFFE) || bits != 16 || channels == 0 || rate == 0 {
        return Err(bad("only 16-bit PCM is supported"));
    }
    let data = data.ok_or_else(|| bad("no data chunk"))?;
    let samples = data.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
    Ok(Pcm { rate, channels, samples })
}

/// A WAV file being written.
pub struct Writer {
    file: File,
    data_bytes: u32,
}

impl Writer {
    /// Creates (truncates) `path` with a header for `rate`/`channels`.
    ///
    /// # Errors
    /// The file cannot be created.
    pub fn create(path: &Path, rate: u32, channels: u16) -> io::Result<Writer> {
        let mut file = File::create(path)?;
        let block = channels * 2;
        let mut h = Vec::with_capacity(44);
        h.extend_from_slice(b"RIFF");
        h.extend_from_slice(&36u32.to_le_bytes());
        h.extend_from_slice(b"WAVEfmt ");
        h.extend_from_slice(&16u32.to_le_bytes());
        h.extend_from_slice(&1u16.to_le_bytes());
        h.extend_from_slice(&channels.to_le_bytes());
        h.extend_from_slice(&rate.to_le_bytes());
        h.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
        h.extend_from_slice(&block.to_le_bytes());
        h.extend_from_slice(&16u16.to_le_bytes());
        h.extend_from_slice(b"data");
        h.extend_from_slice(&0u32.to_le_bytes());
        file.write_all(&h)?;
        Ok(Writer { file, data_bytes: 0 })
    }

    /// Goes on writing a file this writer made (after a transport restart:
    /// one recording per call), or creates it when there is none.
    ///
    /// # Errors
    /// The file cannot be opened or created, or is not one of ours for
    /// `rate`/`channels`.
    pub fn resume(path: &Path, rate: u32, channels: u16) -> io::Result<Writer> {
        let Ok(bytes) = std::fs::read(path) else {
            return Writer::create(path, rate, channels);
        };
        let pcm = parse(&bytes)?;
        if pcm.rate != rate || pcm.channels != channels || bytes.len() != 44 + pcm.samples.len() * 2 {
            return Err(bad("not a recording this writer can continue"));
        }
        let file = std::fs::OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Writer { file, data_bytes: (pcm.samples.len() * 2) as u32 })
    }

    /// Appends little-endian 16-bit samples and fixes the header's sizes.
    ///
    /// # Errors
    /// The write fails.
    pub fn append(&mut self, le_bytes: &[u8]) -> io::Result<()> {
        self.file.seek(SeekFrom::End(0))?;
        self.file.write_all(le_bytes)?;
        self.data_bytes = self.data_bytes.saturating_add(le_bytes.len() as u32);
        self.file.seek(SeekFrom::Start(4))?;
        self.file.write_all(&(36 + self.data_bytes).to_le_bytes())?;
        self.file.seek(SeekFrom::Start(40))?;
        self.file.write_all(&self.data_bytes.to_le_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_file_reads_back() {
        let dir = std::env::temp_dir().join(format!("courier-media-wav-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.wav");
        let mut w = Writer::create(&path, 48000, 1).unwrap();
        let samples: Vec<i16> = vec![0, 1000, -1000, i16::MAX, i16::MIN];
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        w.append(&bytes[..4]).unwrap();
        w.append(&bytes[4..]).unwrap();
        let pcm = read(&path).unwrap();
        assert_eq!(pcm, Pcm { rate: 48000, channels: 1, samples });
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_resumed_recording_goes_on_after_what_was_written() {
        let dir = std::env::temp_dir().join(format!("courier-media-wav-resume-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.wav");
        let bytes = |s: &[i16]| -> Vec<u8> { s.iter().flat_map(|v| v.to_le_bytes()).collect() };
        Writer::create(&path, 48000, 1).unwrap().append(&bytes(&[1, 2])).unwrap();
        Writer::resume(&path, 48000, 1).unwrap().append(&bytes(&[3])).unwrap();
        assert_eq!(read(&path).unwrap().samples, vec![1, 2, 3]);
        assert!(Writer::resume(&path, 44100, 1).is_err(), "another format is not continued");
        let fresh = dir.join("new.wav");
        Writer::resume(&fresh, 48000, 1).unwrap().append(&bytes(&[7])).unwrap();
        assert_eq!(read(&fresh).unwrap().samples, vec![7]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn other_formats_are_refused() {
        assert!(parse(b"RIFF\0\0\0\0WAVE").is_err());
        assert!(parse(b"OggS").is_err());
        let mut float = Vec::new();
        float.extend_from_slice(b"RIFF\x24\0\0\0WAVEfmt \x10\0\0\0");
        float.extend_from_slice(&3u16.to_le_bytes()); // IEEE float
        float.extend_from_slice(&1u16.to_le_bytes());
        float.extend_from_slice(&48000u32.to_le_bytes());
        float.extend_from_slice(&192000u32.to_le_bytes());
        float.extend_from_slice(&4u16.to_le_bytes());
        float.extend_from_slice(&32u16.to_le_bytes());
        float.extend_from_slice(b"data\0\0\0\0");
        assert!(parse(&float).is_err());
    }
}
