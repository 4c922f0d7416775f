"""Progress of a run: a tqdm bar on a terminal, plain periodic lines otherwise, or nothing.

On a terminal each epoch gets a bar with images/s, the running loss and tqdm's ETA. When stderr
is not a terminal (a log file, CI) a line is printed every `LINE_INTERVAL_S` seconds and at the
end of every epoch, so logs stay short and readable.
"""

from __future__ import annotations

import sys
import time

LINE_INTERVAL_S = 10.0


class Progress:
    """Reports batches and epochs; ``enabled=None`` picks a bar on a terminal, lines otherwise."""

    def __init__(self, enabled: bool | None, epochs: int, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.silent = enabled is False
        self.use_bar = not self.silent and self.stream.isatty()
        self.epochs = epochs
        self.bar = None

    def start_epoch(self, epoch: int, batches: int, done: int) -> None:
        self.epoch, self.batches, self.done = epoch, batches, done
        self.images, self.loss_sum, self.started = 0, 0.0, time.perf_counter()
        self.last_line = self.started
        if self.use_bar:
            from tqdm import tqdm

            self.bar = tqdm(total=batches, initial=done, desc=f"epoch {epoch + 1}/{self.epochs}",
                            unit="batch", file=self.stream, leave=False, dynamic_ncols=True)

    def update(self, images: int, loss: float) -> None:
        self.done += 1
        self.images += images
        self.loss_sum += loss * images
        if self.silent:
            return
        now = time.perf_counter()
        rate = self.images / max(now - self.started, 1e-9)
        if self.bar is not None:
            self.bar.set_postfix_str(f"loss {self.loss_sum / self.images:.4f}, {rate:.0f} img/s", refresh=False)
            self.bar.update(1)
        elif now - self.last_line >= LINE_INTERVAL_S:
            self.last_line = now
            eta = (self.batches - self.done) * (now - self.started) / max(self.done, 1)
            self.write(f"epoch {self.epoch + 1}/{self.epochs} batch {self.done}/{self.batches} "
                       f"loss {self.loss_sum / self.images:.4f} {rate:.0f} img/s, epoch ETA {eta:.0f} s")

    def end_epoch(self, record: dict, recorded=(), improved: bool = False) -> None:
        """One line: the training figures, the validation figures ``val_KEY`` for KEY in
        ``recorded``, the learning rate and the speed."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.silent:
            return
        train = ", ".join(f"{key[6:]} {_figure(key, value)}" for key, value in record.items()
                          if key.startswith("train_"))
        val = ", ".join(f"{key} {_figure(key, record.get('val_' + key))}" for key in recorded)
        self.write(
            f"epoch {record['epoch'] + 1}/{self.epochs}: train {train}; val {val}{' (best)' if improved else ''}; "
            f"lr {record['lr']:.3g}, {record['seconds']:.1f} s, {record['images_per_second']:.0f} img/s"
        )

    def write(self, line: str) -> None:
        if self.silent:
            return
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)


def _figure(key: str, value) -> str:
    """A loss with four decimals, an accuracy (top1, top5) in percent, anything else with four digits."""
    if value is None:
        return "-"
    if key.endswith(("top1", "top5")):
        return f"{100 * value:.2f} %"
    return f"{value:.4f}" if "loss" in key else f"{value:.4g}"
