"""N-MNIST recordings (ATIS 40-bit events) to binary frames [T=10, 2, 32, 32].

Decoded by hand: ``spikingjelly.datasets.load_ATIS_bin`` does the same, but importing
``spikingjelly.datasets`` pulls in torchaudio, which has no release for torch 2.14.1.
Format (Orchard et al. 2015): 5 bytes an event; x = byte 0, y = byte 1, polarity = bit 7 of
byte 2, timestamp (us) = 23 bits from the low 7 bits of byte 2 and bytes 3-4. Events with
y = 240 are timestamp-overflow markers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

SENSOR_SIZE = 34
FRAME_SIZE = 32
TIME_BINS = 10
BIN_US = 5000


def decode_events(raw: bytes) -> dict[str, np.ndarray]:
    data = np.frombuffer(raw, dtype=np.uint8)
    if data.size % 5:
        raise ValueError("an ATIS event file holds a whole number of 5-byte events")
    data = data.reshape(-1, 5).astype(np.uint32)
    x, y = data[:, 0], data[:, 1]
    polarity = (data[:, 2] >> 7) & 1
    timestamp = ((data[:, 2] & 127) << 16) | (data[:, 3] << 8) | data[:, 4]
    overflow = np.cumsum(y == 240) * (1 << 23)  # each marker adds 2^23 us to later events
    keep = y != 240
    return {"t": (timestamp + overflow)[keep], "x": x[keep], "y": y[keep], "p": polarity[keep]}


EVENT_VALUE = 255  # uint8 pixel scale, like the image datasets: Split.as_float gives frames in {0, 1}


def events_to_frames(events: dict[str, np.ndarray]) -> np.ndarray:
    """Binary frames: 10 bins of 5 ms from the start of the recording, both polarities,
    centre-cropped from 34x34 to 32x32. Returns uint8 [10, 2, 32, 32] holding 0 or 255."""
    frames = np.zeros((TIME_BINS, 2, SENSOR_SIZE, SENSOR_SIZE), dtype=np.uint8)
    if events["t"].size:
        bins = (events["t"] - events["t"].min()) // BIN_US
        inside = (bins < TIME_BINS) & (events["x"] < SENSOR_SIZE) & (events["y"] < SENSOR_SIZE)
        frames[bins[inside], events["p"][inside], events["y"][inside], events["x"][inside]] = EVENT_VALUE
    margin = (SENSOR_SIZE - FRAME_SIZE) // 2
    return frames[:, :, margin : margin + FRAME_SIZE, margin : margin + FRAME_SIZE]


def recording_files(split_dir: Path) -> list[tuple[Path, int]]:
    """(file, label) pairs in recording order (the file number), as in the original archive."""
    pairs = [
        (path, int(path.parent.name))
        for path in split_dir.glob("[0-9]/*.bin")
    ]
    return sorted(pairs, key=lambda pair: (int(pair[0].stem), pair[1]))


def load_frames(files: list[tuple[Path, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    frames = np.stack([events_to_frames(decode_events(path.read_bytes())) for path, _ in files])
    labels = np.array([label for _, label in files], dtype=np.int64)
    return torch.from_numpy(frames), torch.from_numpy(labels)
