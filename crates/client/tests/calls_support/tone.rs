//! What a recording sounds like: a 16-bit PCM WAV reader and a Goertzel
//! scan for the dominant frequency and its level.

/// Mono samples in −1..1 (the first channel) and the sample rate.
pub struct Pcm {
    pub rate: u32,
    pub samples: Vec<f64>,
}

/// Reads a 16-bit PCM WAV file, walking its chunks.
pub fn read_wav(bytes: &[u8]) -> Result<Pcm, String> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err("not a RIFF/WAVE file".into());
    }
    let (mut at, mut fmt, mut data) = (12, None, None);
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        let body = &bytes[at + 8..(at + 8 + len).min(bytes.len())];
        match id {
            b"fmt " if body.len() >= 16 => fmt = Some(body.to_vec()),
            b"data" => data = Some(body.to_vec()),
            _ => {}
        }
        at += 8 + len + (len & 1);
    }
    let fmt = fmt.ok_or("no fmt chunk")?;
    let data = data.ok_or("no data chunk")?;
    let u16_at = |i: usize| u16::from_le_bytes([fmt[i], fmt[i + 1]]);
    let (format, channels, bits) = (u16_at(0), u16_at(2).max(1) as usize, u16_at(14));
    if format != 1 || bits != 16 {
        return Err(format!("not 16-bit PCM (format {format}, {bits} bits)"));
    }
    let rate = u32::from_le_bytes(fmt[4..8].try_into().unwrap());
    let samples = data
        .chunks_exact(2 * channels)
        .map(|frame| f64::from(i16::from_le_bytes([frame[0], frame[1]])) / 32768.0)
        .collect();
    Ok(Pcm { rate, samples })
}

/// The amplitude of the `hz` component of `x` (Goertzel; a full-scale sine
/// gives 1.0).
pub fn amplitude_at(x: &[f64], rate: u32, hz: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz / f64::from(rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &v in x {
        let s0 = v + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    2.0 * power.max(0.0).sqrt() / x.len() as f64
}

/// What a stretch of audio is, dominated by one tone or not.
#[derive(Debug)]
pub struct Analysis {
    /// The strongest frequency between 100 and 2000 Hz (5 Hz steps).
    pub peak_hz: f64,
    /// That component's RMS level, dBFS.
    pub peak_dbfs: f64,
    /// The whole signal's RMS level, dBFS.
    pub total_dbfs: f64,
    /// The share of the signal's power in that component (0..1).
    pub share: f64,
    /// Seconds analysed.
    pub seconds: f64,
}

fn dbfs(rms: f64) -> f64 {
    20.0 * rms.max(1e-9).log10()
}

/// Analyses one second of the recording from its middle (the start holds
/// the jitter buffer filling up, the end the hang-up).
pub fn analyse(pcm: &Pcm) -> Analysis {
    let n = pcm.rate as usize;
    let mid = pcm.samples.len() / 2;
    let from = mid.saturating_sub(n / 2);
    let x = &pcm.samples[from..(from + n).min(pcm.samples.len())];
    let total_rms = (x.iter().map(|v| v * v).sum::<f64>() / x.len().max(1) as f64).sqrt();
    let (mut peak_hz, mut peak_amp) = (0.0, 0.0);
    let mut hz = 100.0;
    while hz <= 2000.0 {
        let a = amplitude_at(x, pcm.rate, hz);
        if a > peak_amp {
            (peak_hz, peak_amp) = (hz, a);
        }
        hz += 5.0;
    }
    let peak_rms = peak_amp / std::f64::consts::SQRT_2;
    Analysis {
        peak_hz,
        peak_dbfs: dbfs(peak_rms),
        total_dbfs: dbfs(total_rms),
        share: if total_rms > 0.0 { (peak_rms / total_rms).powi(2) } else { 0.0 },
        seconds: x.len() as f64 / f64::from(pcm.rate.max(1)),
    }
}

/// Asserts that the recording at `path` is dominated by a tone of `hz`
/// (±10 Hz) at an audible level.
pub fn assert_hears(path: &std::path::Path, hz: f64, who: &str) -> Analysis {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{who}: no recording {}: {e}", path.display()));
    let pcm = read_wav(&bytes).unwrap_or_else(|e| panic!("{who}: {}: {e}", path.display()));
    let a = analyse(&pcm);
    eprintln!("{who} heard {a:?}");
    assert!(a.seconds >= 0.99, "{who}: the recording is too short: {a:?}");
    assert!(
        (a.peak_hz - hz).abs() <= 10.0,
        "{who}: the dominant frequency is {} Hz, not {hz} Hz: {a:?}",
        a.peak_hz
    );
    assert!(a.peak_dbfs > -30.0, "{who}: the {hz} Hz tone is too quiet: {a:?}");
    assert!(a.share > 0.5, "{who}: the {hz} Hz tone does not dominate: {a:?}");
    a
}

/// A 16-bit mono WAV file of `x` (for the analysis's own tests).
pub fn wav_bytes(x: &[f64], rate: u32) -> Vec<u8> {
    let data_len = (x.len() * 2) as u32;
    let mut b = Vec::with_capacity(44 + x.len() * 2);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * 2).to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    for v in x {
        b.extend_from_slice(&((v.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes());
    }
    b
}
