"""The signal model of the synthetic corpus: a baby's voice, a recording session, one cry.

:mod:`cryprint.data.synth` plans the corpus (babies, splits, periods, durations, random
streams) and writes its files; this module turns random draws into cry audio.

The model of a cry
==================
Each expiration is rendered with a source–filter model, vectorised over samples:

*Source.* A band-limited pulse train (every harmonic of f0 up to 7.5 kHz at equal amplitude,
as a closed-form Dirichlet sum) following an f0 track, plus pulse-synchronous aspiration noise.

*Filter.* A cascade of four formant resonators times a spectral tilt, applied as a zero-phase
magnitude response in the FFT domain; then the recording channel (below).

Identity traits of a baby (drawn once per baby; population ranges):

=============================  =================================================================
f0 level                       300–620 Hz (log-normal around 430 Hz; newborn cries)
melody (rise–fall contour)     log-f0 rises by 0.10–0.45 (≈2–8 semitones) from the onset to a
                               peak at 20–60 % of the expiration, then falls by 0.15–0.60
vibrato                        4–10 Hz, depth 0.005–0.04 in log-f0
jitter                         0.4–2 % cycle-scale log-f0 noise
shimmer                        3–15 % cycle-scale amplitude noise
breathiness                    harmonics-to-aspiration ratio 6–24 dB
first harmonic                 H1 boost −4…+8 dB (glottal open quotient)
spectral tilt                  0–8 dB/octave above 400 Hz (on top of the formant cascade)
formants F1–F4                 850–1400, 2300–3500, 4100–5400, 5800–7000 Hz (a short vocal tract)
formant bandwidths             120–320, 180–420, 250–600, 350–800 Hz
voicing breaks                 0–0.8 per second, 30–150 ms each (voicing → turbulent noise)
hyperphonation                 0–40 % of expirations hold a 10–40 % stretch at 1.8–3.5 × f0
onset / offset                 raised-cosine attack 20–100 ms, release 40–200 ms
=============================  =================================================================

Per-expiration variation around the traits (standard deviations at ``difficulty`` 1): f0 level
×exp(N(0, 0.08)) (≈1.4 semitones), rise/fall ×exp(N(0, 0.25)), peak position ±0.08, each
formant ×exp(N(0, 0.04)), bandwidths ×exp(N(0, 0.12)), tilt ±1.5 dB/octave, breathiness
±3 dB, level ±3 dB, vibrato rate ×exp(N(0, 0.15)). A recording (one baby, one period) also
shares a context offset: f0 ×exp(N(0, 0.04)), formants ×exp(N(0, 0.02)) — the baby's state in
that session. Whether an expiration has a break or hyperphonation is drawn from the traits.

Period D versus B: the baby is older, so D's traits drift from B's: f0 ×exp(N(0, 0.05)),
formants ×exp(N(0, 0.03)) together and ×exp(N(0, 0.015)) each, tilt ±1 dB/octave,
breathiness ±2 dB, melody rise/fall ×exp(N(0, 0.15)).

Channel: every recording (B and D alike, drawn independently) passes its own microphone and
room: a smooth random EQ (four cosine terms over log-frequency, N(0, 2 dB) each), a
2nd-order high-pass at 30 + U(0, 150) Hz, a 4th-order low-pass at 7800 − U(0, 2500) Hz (at
least 3 kHz), a level of −20 ± 4 dB FS (rms, before the channel), and stationary background
noise with a random slope of −9…−1 dB/octave at an SNR of 50 − U(15, 35) dB (at least 0 dB),
its level constant across the recording's files. Loud files are scaled to a 0.97 peak (no
clipping).

``difficulty`` (0 to 5, default 1) multiplies every standard deviation of the per-expiration
variation, the recording context, the B→D drift, and the channel's EQ, band limits, level
spread and noise (the ``U(...)`` terms above). At 0 the cries of a baby differ only in
duration, breaks, hyperphonation, jitter/shimmer/aspiration noise, and the channel is clean
(flat, SNR 50 dB): verification is easy. Calibration: a hand-made embedding (mean log-mel
spectrum of a recording, level removed, cosine scoring; see ``tests/data/test_synth.py``)
gives an EER of about 0 %, 7 %, 25 %, 41 % and 46 % at difficulty 0, 0.5, 1, 1.5 and 2 on
the dev + test pairs of the default corpus (240 babies, seed 0). The published CryCeleb
systems reach 22–30 % on the real data.

``difficulty`` scales the draws and never changes how many are taken, so the same generator
state gives the same cries, more or less varied, at every difficulty.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import scipy.fft

from cryprint.data.audio import SAMPLE_RATE

_HARMONIC_LIMIT_HZ = 7500.0
_TILT_CORNER_HZ = 400.0
_F0_RANGE_HZ = (150.0, 2500.0)
_CONTROL_STEP = 40  # samples between jitter/shimmer control points: about one glottal cycle
_FFT_PADDING = 1024  # samples of zero padding so the filters' ringing does not wrap around
_PEAK_LIMIT = 0.97
# The channel's response is computed once per recording on this grid, then interpolated.
_CHANNEL_GRID_HZ = np.linspace(0.0, SAMPLE_RATE / 2, 2049)


@dataclass(frozen=True)
class VoiceTraits:
    """The identity traits of one baby in one period (see the module docstring)."""

    f0_hz: float
    f0_rise: float
    f0_fall: float
    peak_position: float
    vibrato_rate_hz: float
    vibrato_depth: float
    jitter: float
    shimmer: float
    harmonics_to_noise_db: float
    h1_boost_db: float
    tilt_db_per_octave: float
    formants_hz: np.ndarray
    bandwidths_hz: np.ndarray
    break_rate_per_s: float
    hyperphonation_probability: float
    hyperphonation_ratio: float
    attack_s: float
    release_s: float


@dataclass(frozen=True)
class RecordingSession:
    """One recording (one baby, one period): the baby's state that day and the channel."""

    f0_offset: float
    formant_offset: float
    level_db: float
    eq_db: np.ndarray
    highpass_hz: float
    lowpass_hz: float
    snr_db: float
    noise_slope_db_per_octave: float
    response: np.ndarray  # the channel's magnitude response on _CHANNEL_GRID_HZ


def draw_voice(rng: np.random.Generator) -> VoiceTraits:
    """A baby's identity traits, drawn from the population ranges of the module docstring."""
    formants = np.array(
        [rng.uniform(850, 1400), rng.uniform(2300, 3500), rng.uniform(4100, 5400),
         rng.uniform(5800, 7000)]
    )  # fmt: skip
    bandwidths = np.array(
        [rng.uniform(120, 320), rng.uniform(180, 420), rng.uniform(250, 600),
         rng.uniform(350, 800)]
    )  # fmt: skip
    return VoiceTraits(
        f0_hz=float(np.clip(430.0 * np.exp(0.13 * rng.standard_normal()), 300.0, 620.0)),
        f0_rise=rng.uniform(0.10, 0.45),
        f0_fall=rng.uniform(0.15, 0.60),
        peak_position=rng.uniform(0.2, 0.6),
        vibrato_rate_hz=rng.uniform(4.0, 10.0),
        vibrato_depth=rng.uniform(0.005, 0.04),
        jitter=rng.uniform(0.004, 0.02),
        shimmer=rng.uniform(0.03, 0.15),
        harmonics_to_noise_db=rng.uniform(6.0, 24.0),
        h1_boost_db=rng.uniform(-4.0, 8.0),
        tilt_db_per_octave=rng.uniform(0.0, 8.0),
        formants_hz=formants,
        bandwidths_hz=bandwidths,
        break_rate_per_s=rng.uniform(0.0, 0.8),
        hyperphonation_probability=0.4 * rng.uniform() ** 2,
        hyperphonation_ratio=rng.uniform(1.8, 3.5),
        attack_s=rng.uniform(0.02, 0.10),
        release_s=rng.uniform(0.04, 0.20),
    )


def drift_voice(voice: VoiceTraits, rng: np.random.Generator, difficulty: float) -> VoiceTraits:
    """Period D's traits: the same baby, a day or so older (scaled by difficulty)."""
    normal = rng.standard_normal(9) * difficulty
    formant_scale = np.exp(0.03 * normal[0] + 0.015 * normal[1:5])
    return dataclasses.replace(
        voice,
        f0_hz=voice.f0_hz * float(np.exp(0.05 * normal[5])),
        formants_hz=voice.formants_hz * formant_scale,
        tilt_db_per_octave=voice.tilt_db_per_octave + 1.0 * normal[6],
        harmonics_to_noise_db=voice.harmonics_to_noise_db + 2.0 * normal[7],
        f0_rise=voice.f0_rise * float(np.exp(0.15 * normal[8])),
        f0_fall=voice.f0_fall * float(np.exp(0.15 * normal[8])),
    )


def draw_session(rng: np.random.Generator, difficulty: float) -> RecordingSession:
    """A recording's context offsets and channel (scaled by difficulty)."""
    normal = rng.standard_normal(7) * difficulty
    uniform = rng.uniform(size=3)
    session = RecordingSession(
        f0_offset=0.04 * normal[0],
        formant_offset=0.02 * normal[1],
        level_db=-20.0 + 4.0 * normal[2],
        eq_db=2.0 * normal[3:7],
        highpass_hz=30.0 + difficulty * 150.0 * uniform[0],
        lowpass_hz=max(3000.0, 7800.0 - difficulty * 2500.0 * uniform[1]),
        snr_db=max(0.0, 50.0 - difficulty * (15.0 + 20.0 * uniform[2])),
        noise_slope_db_per_octave=rng.uniform(-9.0, -1.0),
        response=np.empty(0),
    )
    return dataclasses.replace(session, response=_channel_response(_CHANNEL_GRID_HZ, session))


# --- one expiration --------------------------------------------------------------------------


def render_expiration(
    samples: int,
    voice: VoiceTraits,
    session: RecordingSession,
    rng: np.random.Generator,
    difficulty: float,
) -> np.ndarray:
    """One cry expiration through the session's channel: int16 [samples] at 16 kHz.

    Args:
        samples: the expiration's length in samples.
        voice: the baby's traits in this period.
        session: the recording it belongs to (shared by the recording's expirations).
        rng: the recording's generator; always advanced by the same number of draws for the
            same ``samples`` and voice, whatever ``difficulty``.
        difficulty: 0 to 5, scales the per-expiration variation (see the module docstring).
    """
    # Per-expiration deviations: [0:5] melody, [5] breathiness, [6:15] filter, [15] level.
    varied = rng.standard_normal(16) * difficulty
    uniform = rng.uniform(size=4)  # [0:3] melody, [3] the pulse train's starting phase
    t = np.arange(samples) / SAMPLE_RATE
    contour, f0 = _melody(t, voice, session, varied[0:5], uniform[0:3], rng)
    harmonics_to_noise_db = voice.harmonics_to_noise_db + 3.0 * varied[5]
    source = _source(t, f0, uniform[3], voice, harmonics_to_noise_db, rng)
    envelope = _envelope(t, contour, voice, rng)
    size = scipy.fft.next_fast_len(samples + _FFT_PADDING, real=True)
    frequencies = np.fft.rfftfreq(size, 1.0 / SAMPLE_RATE)
    cry = scipy.fft.rfft(source * envelope, size) * _vocal_tract(
        frequencies, voice, session, varied[6:15]
    )
    level_db = session.level_db + 3.0 * varied[15]
    return _record(cry, samples, size, frequencies, session, level_db, rng)


def _melody(
    t: np.ndarray,
    voice: VoiceTraits,
    session: RecordingSession,
    varied: np.ndarray,
    uniform: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """The rise–fall contour [samples] and the f0 track in Hz [samples]: a rise to the peak
    then a fall (quadratic in log f0), vibrato, jitter, and perhaps a hyperphonated stretch."""
    seconds = len(t) / SAMPLE_RATE
    position = t / seconds
    peak = float(np.clip(voice.peak_position + 0.08 * varied[0], 0.08, 0.92))
    rise = voice.f0_rise * np.exp(0.25 * varied[1])
    fall = voice.f0_fall * np.exp(0.25 * varied[2])
    contour = np.where(
        position < peak,
        -rise * ((peak - position) / peak) ** 2,
        -fall * ((position - peak) / (1.0 - peak)) ** 2,
    )
    f0_level = voice.f0_hz * np.exp(session.f0_offset + 0.08 * varied[3])
    vibrato_rate = voice.vibrato_rate_hz * np.exp(0.15 * varied[4])
    log_f0 = (
        np.log(f0_level)
        + contour
        + voice.vibrato_depth * np.sin(2 * np.pi * (vibrato_rate * t + uniform[0]))
        + voice.jitter * _control_noise(rng, len(t))
    )
    if rng.uniform() < voice.hyperphonation_probability:
        length = seconds * (0.1 + 0.3 * uniform[1])
        start = (seconds - length) * uniform[2]
        stretch = _soft_box(t, start, start + length, 0.02)
        log_f0 = log_f0 + stretch * np.log(voice.hyperphonation_ratio)
    return contour, np.exp(np.clip(log_f0, *np.log(_F0_RANGE_HZ)))


def _source(
    t: np.ndarray,
    f0: np.ndarray,
    start_phase: float,
    voice: VoiceTraits,
    harmonics_to_noise_db: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """The glottal source [samples]: pulses plus aspiration, with voicing breaks."""
    samples = len(t)
    seconds = samples / SAMPLE_RATE
    # All harmonics below the limit at equal amplitude (Dirichlet kernel), the top one faded
    # in by its fractional part so the count can change smoothly with f0.
    phase = np.mod(2 * np.pi * (np.cumsum(f0) / SAMPLE_RATE + start_phase), 2 * np.pi)
    harmonics = _HARMONIC_LIMIT_HZ / f0
    whole = np.floor(harmonics)
    half_sine = np.sin(phase / 2)
    near_zero = np.abs(half_sine) < 1e-9
    dirichlet = np.where(
        near_zero,
        whole,
        np.sin((whole + 0.5) * phase) / (2 * np.where(near_zero, 1.0, half_sine)) - 0.5,
    )
    h1_extra = 10 ** (voice.h1_boost_db / 20) - 1.0
    pulses = dirichlet + (harmonics - whole) * np.cos((whole + 1) * phase)
    pulses = (pulses + h1_extra * np.cos(phase)) / np.sqrt(harmonics / 2)
    aspiration = rng.standard_normal(samples) * (0.7 + 0.3 * np.cos(phase))
    noise_ratio = 10 ** (-harmonics_to_noise_db / 20)

    # Voicing breaks: voicing collapses into turbulent noise for 30–150 ms.
    voicing = np.ones(samples)
    for _ in range(rng.poisson(voice.break_rate_per_s * seconds)):
        length, start = rng.uniform(0.03, 0.15), rng.uniform(0.0, seconds)
        voicing -= 0.92 * _soft_box(t, start, start + length, 0.015)
    voicing = np.clip(voicing, 0.0, 1.0)
    return voicing * (pulses + noise_ratio * aspiration) + (1.0 - voicing) * 0.7 * aspiration


def _envelope(
    t: np.ndarray, contour: np.ndarray, voice: VoiceTraits, rng: np.random.Generator
) -> np.ndarray:
    """Amplitude [samples]: onset and offset ramps, louder near the melody peak, shimmer."""
    seconds = len(t) / SAMPLE_RATE
    ramp_scale = min(1.0, 0.8 * seconds / (voice.attack_s + voice.release_s))
    return (
        _smoothstep(t / (voice.attack_s * ramp_scale))
        * _smoothstep((seconds - t) / (voice.release_s * ramp_scale))
        * np.exp(0.8 * contour + voice.shimmer * _control_noise(rng, len(t)))
    )


def _vocal_tract(
    frequencies: np.ndarray, voice: VoiceTraits, session: RecordingSession, varied: np.ndarray
) -> np.ndarray:
    """This expiration's formant cascade and tilt on ``frequencies``: [0:4] formants,
    [4:8] bandwidths, [8] tilt deviations."""
    formants = voice.formants_hz * np.exp(session.formant_offset + 0.04 * varied[0:4])
    bandwidths = voice.bandwidths_hz * np.exp(0.12 * varied[4:8])
    tilt = voice.tilt_db_per_octave + 1.5 * varied[8]
    return _voice_response(frequencies, formants, bandwidths, tilt)


def _record(
    cry: np.ndarray,
    samples: int,
    size: int,
    frequencies: np.ndarray,
    session: RecordingSession,
    level_db: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """The cry (its rfft of length ``size``, on ``frequencies``) at ``level_db``, plus the
    session's background noise, through its channel: int16 [samples], scaled down when it
    would clip."""
    background = scipy.fft.rfft(rng.standard_normal(size)) * _noise_shape(
        frequencies, session.noise_slope_db_per_octave
    )
    cry_level = 10 ** (level_db / 20)
    noise_level = 10 ** ((session.level_db - session.snr_db) / 20)
    mixture = (
        cry * (cry_level / np.sqrt(_mean_square(cry, size, samples)))
        + background * (noise_level / np.sqrt(_mean_square(background, size, size)))
    ) * np.interp(frequencies, _CHANNEL_GRID_HZ, session.response)
    waveform = scipy.fft.irfft(mixture, size)[:samples]
    peak_amplitude = float(np.max(np.abs(waveform)))
    if peak_amplitude > _PEAK_LIMIT:  # an automatic gain control, rather than clipping
        waveform *= _PEAK_LIMIT / peak_amplitude
    return np.round(waveform * 32767.0).astype(np.int16)


# --- small signal helpers --------------------------------------------------------------------


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _soft_box(t: np.ndarray, start: float, stop: float, edge_s: float) -> np.ndarray:
    """1 inside [start, stop] seconds, 0 outside, with smooth edges of ``edge_s``."""
    return _smoothstep((t - start) / edge_s + 0.5) * _smoothstep((stop - t) / edge_s + 0.5)


def _control_noise(rng: np.random.Generator, samples: int) -> np.ndarray:
    """Unit Gaussian noise, one value per glottal-cycle-sized step, interpolated to samples."""
    points = rng.standard_normal(samples // _CONTROL_STEP + 2)
    return np.interp(np.arange(samples) / _CONTROL_STEP, np.arange(len(points)), points)


def _mean_square(spectrum: np.ndarray, size: int, samples: int) -> float:
    """Mean square over ``samples`` of the real signal whose rfft (length ``size``) is given."""
    power = np.abs(spectrum) ** 2
    energy = 2.0 * power.sum() - power[0] - (power[-1] if size % 2 == 0 else 0.0)
    return max(float(energy) / size / samples, 1e-30)


def _voice_response(
    frequencies: np.ndarray, formants: np.ndarray, bandwidths: np.ndarray, tilt: float
) -> np.ndarray:
    """Magnitude of the vocal tract: four resonators in cascade times a spectral tilt."""
    f = frequencies[:, None]
    resonators = formants**2 / np.sqrt((formants**2 - f**2) ** 2 + (bandwidths * f) ** 2)
    slope = max(tilt, 0.0) / (20 * np.log10(2))
    return resonators.prod(axis=1) * (1.0 + (frequencies / _TILT_CORNER_HZ) ** 2) ** (-slope / 2)


def _noise_shape(frequencies: np.ndarray, slope_db_per_octave: float) -> np.ndarray:
    return (1.0 + frequencies / 100.0) ** (slope_db_per_octave / (20 * np.log10(2)))


def _channel_response(frequencies: np.ndarray, session: RecordingSession) -> np.ndarray:
    """Magnitude of the microphone/room: smooth EQ, high-pass, low-pass."""
    f = np.maximum(frequencies, 1.0)
    position = np.log(np.clip(f, 50.0, 8000.0) / 50.0) / np.log(8000.0 / 50.0)
    terms = np.arange(1, len(session.eq_db) + 1)
    eq_db = np.cos(np.pi * terms * position[:, None]) @ session.eq_db
    highpass = 1.0 / np.sqrt(1.0 + (session.highpass_hz / f) ** 4)
    lowpass = 1.0 / np.sqrt(1.0 + (f / session.lowpass_hz) ** 8)
    response = 10 ** (eq_db / 20) * highpass * lowpass
    response[0] = 0.0  # no DC offset
    return response
