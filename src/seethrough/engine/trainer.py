"""The training loop on Lightning Fabric: one engine for CPU, one GPU, DDP and multi-node.

Checkpoints (``last.ckpt``: model, optimizer, scheduler, grad scaler, position in the epoch,
RNG states, running sums, config) are written atomically at every epoch end, every
``checkpoint_every`` steps, and when the loop crashes; ``resume=True`` continues exactly
where it stopped. The selected model (``select``: best val top-1, last epoch or lowest val
loss, see :mod:`.selection`) is kept as safetensors in ``out/best``.
"""
from __future__ import annotations

import inspect
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from lightning.fabric import Fabric

from ..config import TrainConfig, resolve_config
from ..core.checkpoint import LAST_NAME, capture_rng, load_checkpoint, restore_rng, save_checkpoint
from ..data.transforms import DetrSizes
from ..models.base import SeeThroughModel
from ..models.loading import init_backbone_from, init_model_from
from ..models.registry import create_model_from_config
from .accuracy import EpochSums
from .data import attention_maps_file, build_run_data, make_loader, setup_loader
from .logger import RunLogger
from .progress import EpochProgress
from .push_step import PushStep, render_best_gallery
from .sampling import EpochSampler
from .selection import Selection, selection_warning, summary_entry
from .stages import per_stage, recipe_for
from .validate import accepts_padding_mask, forward_batch, validate_model

SUMMARY_NAME, CONFIG_NAME, BEST_DIR = "summary.json", "config.yaml", "best"
#: Config keys that fix the architecture or data; a resumed run must not change them.
RESUME_KEYS = ("model", "backbone", "num_classes", "in_chans", "stem", "data", "data_options", "model_options",
               "img_size", "resize", "resize_options", "batch_size", "seed", "stage_options", "attention_maps",
               "select")


def check_padding_support(model: torch.nn.Module, cfg: TrainConfig) -> None:
    """``resize: detr`` batches images of different sizes, padded (see ``collate``): refuse a
    model that cannot take the padding mask before any data is read."""
    if cfg.resize != "square" and cfg.batch_size > 1 and not accepts_padding_mask(model):
        raise ValueError(
            f"--model {cfg.model} cannot ignore padding: resize {cfg.resize!r} keeps each image's aspect ratio, "
            "so batches hold images of different sizes padded at the bottom/right, and this model's forward takes "
            "no padding_mask; use resize: square (with --img-size), --batch-size 1, or a model that takes "
            "padding_mask (intr)"
        )


class NonFiniteLossError(RuntimeError):
    """The loss became NaN/Inf; the last good checkpoint is kept."""


@dataclass
class RunState:
    """Where the run is: everything besides module/optimizer state needed to continue exactly."""

    epoch: int = 0
    batch_in_epoch: int = 0
    global_step: int = 0
    best_acc1: float = -1.0
    best_epoch: int = -1
    #: val loss of the epoch in best/ (``select: best-loss`` compares with it)
    best_loss: float = math.inf
    skipped: int = 0
    train_seconds: float = 0.0
    train_images: int = 0
    epoch_sums: list[float] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    # multi-stage recipes: the epoch whose push / scheduler step already ran, push records by epoch
    pushed_epoch: int = -1
    scheduled_epoch: int = -1
    pushes: dict[str, Any] = field(default_factory=dict)


def train(cfg: TrainConfig | None = None, *, preset: str | None = None, config_file: str | Path | None = None,
          **overrides: Any) -> dict[str, Any]:
    """Train a model; returns (and writes) the run summary.

    Either a :class:`~seethrough.config.TrainConfig`, or what ``seethrough train`` takes:
    ``seethrough.train(preset="demo", out="runs/demo", epochs=1)`` (defaults < preset < config
    file < keyword overrides).
    """
    if cfg is None:
        cfg = resolve_config(preset=preset, config_file=config_file, overrides=overrides)
    elif preset is not None or config_file is not None or overrides:
        raise ValueError("give either a TrainConfig or preset= / config_file= / overrides, not both")
    cfg.validate()
    fabric = Fabric(accelerator=cfg.accelerator, devices=cfg.devices, num_nodes=cfg.num_nodes,
                    strategy=cfg.strategy, precision=cast(Any, cfg.precision))  # checked by cfg.validate()
    fabric.launch()
    return Trainer(cfg, fabric).fit()


class Trainer:
    """One run: the model, its recipe's optimizers and schedules, the loaders and the loop."""

    def __init__(self, cfg: TrainConfig, fabric: Fabric) -> None:
        self.cfg, self.fabric = cfg, fabric
        self.out = Path(cfg.out)
        self.is_main = fabric.global_rank == 0
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
        fabric.barrier()
        resume_state = self._resume_state()
        fabric.seed_everything(cfg.seed, verbose=False)
        self.data = build_run_data(cfg, attention_maps=attention_maps_file(
            cfg, self.out, is_main=self.is_main, barrier=fabric.barrier))
        model = self._build_model(warn=resume_state is None)
        self.recipe = recipe_for(model, cfg)
        self.plan = self.recipe.plan()
        self.total_epochs = len(self.plan)
        self._build_optimizers(model)
        self._build_loaders()
        self.push = PushStep(cfg, self.data, fabric)
        self.state = RunState()
        self._sums: EpochSums | None = None  # running sums of the epoch in progress
        self._first_bad = torch.tensor(-1, device=fabric.device)  # first step with a NaN/Inf loss
        if resume_state is not None:
            self._load(resume_state)
        self.logger = RunLogger(self.out, enabled=self.is_main)

    def _build_model(self, *, warn: bool) -> SeeThroughModel:
        """The configured model, initialized from ``--init-from`` / ``--use-pre`` when given."""
        cfg = self.cfg
        model = cast(SeeThroughModel, create_model_from_config(cfg.to_dict(), num_classes=self.data.num_classes))
        check_padding_support(model, cfg)
        if cfg.init_from:
            init_model_from(model, cfg.init_from)
        if cfg.use_pre:
            init_backbone_from(model, cfg.use_pre, classes=self.data.train.classes)
        training_warning = getattr(model, "training_warning", None)
        warning = training_warning() if training_warning is not None and not cfg.init_from else None
        if warning and warn:
            self.fabric.print(f"warning: {warning}")
        self._loss_takes_batch = "batch" in inspect.signature(model.compute_loss).parameters
        return model

    def _build_optimizers(self, model: torch.nn.Module) -> None:
        """One optimizer and one schedule per stage of the recipe; the model and optimizers set
        up by Fabric (``self.model``, ``self.optimizers``, ``self.schedulers``)."""
        optimizers = self.recipe.build_optimizers(model)
        self.schedulers = self.recipe.build_schedulers(optimizers)
        ddp_kwargs = getattr(self.fabric.strategy, "_ddp_kwargs", None)
        if self.recipe.trains_parameter_subsets and isinstance(ddp_kwargs, dict):
            # each stage trains a subset of the parameters: DDP must not wait for the others' gradients
            # (Lightning's DDPStrategy passes these keyword arguments to DistributedDataParallel)
            ddp_kwargs.setdefault("find_unused_parameters", True)
        self.model, *wrapped = self.fabric.setup(model, *optimizers.values())
        self.optimizers = dict(zip(optimizers, wrapped))

    def _build_loaders(self) -> None:
        """Training and validation loaders, sharded by rank in a deterministic order."""
        cfg, fabric = self.cfg, self.fabric
        pin = fabric.device.type == "cuda"
        rank, world = fabric.global_rank, fabric.world_size
        self.train_loader = setup_loader(
            fabric, make_loader(self.data.train, cfg, train=True, rank=rank, world_size=world, pin_memory=pin))
        self.val_loader = setup_loader(
            fabric, make_loader(self.data.val, cfg, train=False, rank=rank, world_size=world, pin_memory=pin))
        if len(self.train_loader) == 0:
            raise ValueError(
                f"--data {cfg.data}: {len(self.data.train)} training samples make no full batch of "
                f"{cfg.batch_size} per process on {world} process(es); lower --batch-size"
            )

    # -- checkpoints -----------------------------------------------------------------------
    def _resume_state(self) -> dict | None:
        path = self.out / LAST_NAME
        if not self.cfg.resume:
            if self.is_main and path.exists():
                self.fabric.print(f"note: {path} exists and will be overwritten; pass --resume to continue it")
            return None
        if not path.exists():
            self.fabric.print(f"--resume: no {path} yet, starting a fresh run")
            return None
        ckpt = load_checkpoint(path)
        # a key newer than the checkpoint (e.g. resize) had its default there
        saved, now = {**TrainConfig().to_dict(), **ckpt["config"]}, self.cfg.to_dict()
        changed = [k for k in RESUME_KEYS if saved.get(k) != now.get(k)]
        if changed:
            diffs = "; ".join(f"{k}: checkpoint {saved.get(k)!r} vs now {now.get(k)!r}" for k in changed)
            raise ValueError(f"--resume {path}: the run was started with different settings ({diffs}); "
                             "use the original settings or another --out")
        return ckpt

    @property
    def stage(self) -> str:
        """The stage of the epoch in progress (``"train"`` for single-stage models)."""
        return self.plan[min(self.state.epoch, len(self.plan) - 1)].stage

    @property
    def multi_stage(self) -> bool:
        """Whether the recipe has several stages (then logs and history name the stage)."""
        return len(self.recipe.stages) > 1

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self.optimizers[self.stage]

    def _load(self, ckpt: dict) -> None:
        self.model.load_state_dict(ckpt["model"])
        optimizer_states, scheduler_states = per_stage(ckpt["optimizer"]), per_stage(ckpt["scheduler"])
        for stage, optimizer in self.optimizers.items():
            optimizer.load_state_dict(optimizer_states[stage])
            self.schedulers[stage].load_state_dict(scheduler_states[stage])
        scaler = getattr(self.fabric.strategy.precision, "scaler", None)
        if scaler is not None and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        self.state = RunState(**ckpt["state"])
        restore_rng(ckpt["rng"])
        self.fabric.print(f"resumed {self.out / LAST_NAME}: epoch {self.state.epoch}, "
                          f"batch {self.state.batch_in_epoch}, step {self.state.global_step}")

    def data_info(self) -> dict[str, Any]:
        """What inference needs besides weights: class names, normalization, input size (and,
        for ``resize: detr``, the geometry: evaluation keeps the aspect ratio, shorter side
        ``eval_size``)."""
        info = {"classes": list(self.data.train.classes), "mean": list(self.data.mean),
                "std": list(self.data.std), "img_size": self.cfg.img_size}
        if self.cfg.resize != "square":
            info.update(resize=self.cfg.resize,
                        resize_options=DetrSizes.from_options(self.cfg.resize_options).to_options())
        return info

    def save_last(self, *, barrier: bool = True) -> None:
        """Write ``last.ckpt`` (rank 0); ``barrier=False`` when other ranks may be gone (crash)."""
        self.raise_if_non_finite()  # never checkpoint weights a NaN step may have corrupted
        if self._sums is not None and self.state.batch_in_epoch > 0:
            self.state.epoch_sums = self._sums.to_list()
        if self.is_main:
            scaler = getattr(self.fabric.strategy.precision, "scaler", None)
            save_checkpoint({
                "model": self.model.state_dict(),
                "optimizer": {stage: opt.state_dict() for stage, opt in self.optimizers.items()},
                "scheduler": {stage: sched.state_dict() for stage, sched in self.schedulers.items()},
                "scaler": scaler.state_dict() if scaler is not None else None,
                "state": self.state.__dict__,
                "rng": capture_rng(),
                "config": self.cfg.to_dict(),
                "data": self.data_info(),
            }, self.out / LAST_NAME)
        if barrier:
            self.fabric.barrier()

    # -- loop ------------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        if self.is_main:
            self.cfg.save(self.out / CONFIG_NAME)
        self.warn_test_split_selection()
        started = time.time()
        try:
            while self.state.epoch < self.total_epochs:
                train_stats = self.train_epoch()
                self.end_epoch(train_stats)
        except NonFiniteLossError:
            raise
        except BaseException:
            if self.state.epoch < self.total_epochs and self._first_bad.item() < 0:
                self.fabric.print(f"training interrupted; saving a resumable checkpoint to {self.out / LAST_NAME}")
                self.save_last(barrier=False)
            raise
        finally:
            self.logger.close()
        if self.state.pushes and self.is_main:
            gallery = render_best_gallery(self.out / BEST_DIR, self.state.pushes, self.state.best_epoch, self.cfg,
                                          self.data.mean, self.data.std, self.fabric.device)
            if gallery is not None:
                self.fabric.print(f"prototype gallery: {gallery}")
        return self.write_summary(time.time() - started)

    def begin_epoch(self) -> None:
        """The recipe's hook (stage, schedules — once, not again on a resumption), then the
        push the plan asks for, followed by a checkpoint so a resumed run never pushes twice."""
        state = self.state
        self.recipe.begin_epoch(self.model.module, self.plan, state.epoch, self.schedulers,
                                first_time=state.scheduled_epoch != state.epoch)
        state.scheduled_epoch = state.epoch
        if self.plan[state.epoch].push_before and state.pushed_epoch != state.epoch:
            self.run_push()
            state.pushed_epoch = state.epoch
            self.save_last()

    def run_push(self) -> None:
        """Push the prototypes; from the first push on only pushed models compete for ``best/``."""
        state, module = self.state, self.model.module
        started = time.time()
        result = self.push(module)
        if not state.pushes:
            state.best_acc1, state.best_epoch, state.best_loss = -1.0, -1, math.inf
        state.pushes[str(state.epoch)] = result.to_dict()
        self.fabric.print(f"push before epoch {state.epoch + 1}: {module.num_prototypes} prototypes set to their "
                          f"nearest training patches ({time.time() - started:.1f} s)")
        self.logger.log("push", state.global_step, epoch=state.epoch, seconds=time.time() - started)

    def train_epoch(self) -> dict[str, float]:
        cfg, fabric, state = self.cfg, self.fabric, self.state
        cast(EpochSampler, self.train_loader.sampler).start_epoch(state.epoch,
                                                                  skip=state.batch_in_epoch * cfg.batch_size)
        total = len(self.train_loader) + state.batch_in_epoch
        if cfg.max_batches:
            total = min(total, cfg.max_batches)
        # running sums (kept in the checkpoint when it is written mid-epoch)
        sums = EpochSums.from_list(state.epoch_sums, fabric.device)
        self._sums = sums
        self.begin_epoch()
        self.model.train()
        label = f"epoch {state.epoch + 1}/{self.total_epochs}" + (f" {self.stage}" if self.multi_stage else "")
        progress = EpochProgress(label, total, start=state.batch_in_epoch,
                                 enabled=self.is_main and cfg.progress)
        tick = time.time()
        with progress:
            for batch in self.train_loader:
                if state.batch_in_epoch >= total:
                    break
                terms = self.train_step(batch)
                sums.add_skipped(batch["skipped"])
                if terms is not None:
                    sums.add(terms.pop("logits"), batch["label"], terms["loss"].double() * batch["label"].numel())
                state.batch_in_epoch += 1
                state.global_step += 1
                if state.global_step % cfg.log_every == 0 or state.batch_in_epoch == total:
                    self.raise_if_non_finite()
                    elapsed = state.train_seconds + time.time() - tick
                    seen = sums.samples.item()
                    progress.update(state.batch_in_epoch, loss=sums.mean_loss(), acc=sums.accuracy(1),
                                    ips=(state.train_images + seen * fabric.world_size) / max(elapsed, 1e-9))
                    if terms is not None:
                        self.logger.log("train_step", state.global_step, epoch=state.epoch,
                                        lr=self.optimizer.param_groups[0]["lr"],
                                        **{k: v.item() for k, v in terms.items()})
                if cfg.checkpoint_every and state.global_step % cfg.checkpoint_every == 0:
                    self.save_last()
        seconds = time.time() - tick
        self._sums = None
        stats: dict[str, float] = sums.all_reduce(fabric).summary()
        state.train_seconds += seconds
        state.train_images += int(stats["samples"])
        state.skipped += int(stats["skipped"])
        stats.update(seconds=seconds, images_per_s=stats["samples"] / max(seconds, 1e-9))
        return stats

    def train_step(self, batch: dict) -> dict | None:
        """One optimization step; returns the detached loss terms and the batch's ``logits``,
        None for an empty batch."""
        if "image" not in batch:  # every sample of the batch was a skipped bad image
            return None
        out = forward_batch(self.model, batch)
        extra = {"batch": batch} if self._loss_takes_batch else {}
        terms = self.model.compute_loss(out, batch["label"], **extra)
        self.note_finite(terms["loss"])
        self.optimizer.zero_grad(set_to_none=True)
        self.fabric.backward(terms["loss"])
        if self.cfg.clip_grad:
            # A non-finite norm is not an error here: under 16-mixed the grad scaler skips that step,
            # and a NaN loss is reported by raise_if_non_finite with its own message (audit B3).
            self.fabric.clip_gradients(self.model, self.optimizer, max_norm=self.cfg.clip_grad,
                                       error_if_nonfinite=False)
        self.optimizer.step()
        terms = {k: v.detach() for k, v in terms.items()}
        terms["logits"] = out.logits.detach()
        return terms

    def note_finite(self, loss: torch.Tensor) -> None:
        """Remember the first step whose loss is NaN/Inf, on the device (no sync per step)."""
        bad = ~torch.isfinite(loss.detach())
        step = torch.full_like(self._first_bad, self.state.global_step + 1)
        self._first_bad = torch.where(bad & (self._first_bad < 0), step, self._first_bad)

    def raise_if_non_finite(self) -> None:
        """Called where the loop syncs anyway (logging, checkpoints, epoch end), before any save."""
        first_bad = self._first_bad
        if self.fabric.world_size > 1:
            first_bad = cast(torch.Tensor, self.fabric.all_reduce(first_bad.clone(), reduce_op="max"))
        if first_bad.item() >= 0:
            last = self.out / LAST_NAME
            kept = f"the last good checkpoint {last} is kept" if last.exists() else "no checkpoint was written yet"
            raise NonFiniteLossError(
                f"the training loss became non-finite (NaN/Inf) at epoch {self.state.epoch + 1}, step "
                f"{int(first_bad.item())}; {kept} (resume with --resume). Try a lower --lr, "
                "--clip-grad 1.0, or --precision 32-true."
                + (f" {hint}." if (hint := getattr(self.model.module, "non_finite_hint", "")) else "")
            )

    def end_epoch(self, train_stats: dict[str, float]) -> None:
        cfg, state, stage = self.cfg, self.state, self.stage
        self.raise_if_non_finite()
        self.recipe.end_epoch(self.plan, state.epoch, self.schedulers)
        val = validate_model(self.model, self.val_loader, self.fabric)
        state.epoch += 1
        state.batch_in_epoch = 0
        state.epoch_sums = []
        record = {"epoch": state.epoch, "lr": self.optimizers[stage].param_groups[0]["lr"],
                  **({"stage": stage} if self.multi_stage else {}),
                  **{f"train_{k}": v for k, v in train_stats.items()}, **{f"val_{k}": v for k, v in val.items()}}
        state.history.append(record)
        selection = Selection(state.best_epoch, state.best_acc1, state.best_loss)
        improved = selection.improves(cfg.select, val["acc1"], val["loss"]) and self.recipe.competes_for_best(
            self.plan, state.epoch - 1, pushed=bool(state.pushes))
        if improved:
            state.best_acc1, state.best_loss, state.best_epoch = val["acc1"], val["loss"], state.epoch
            if self.is_main:
                self.model.module.save_pretrained(self.out / BEST_DIR, dataset=cfg.data, epoch=state.epoch,
                                                  val_acc1=val["acc1"], val_acc5=val["acc5"], val_loss=val["loss"],
                                                  select=cfg.select, pretrained_weights=self.pretrained_weights,
                                                  **self.data_info())
        self.logger.log("epoch", state.global_step, **record)
        self.fabric.print(
            f"epoch {state.epoch}/{self.total_epochs}  "
            f"train loss {train_stats['loss']:.4f} acc {train_stats['acc1']:.3f}  "
            f"| val loss {val['loss']:.4f} acc1 {val['acc1']:.3f} acc5 {val['acc5']:.3f}  "
            f"| {train_stats['images_per_s']:.1f} img/s" + ("  (best)" if improved else "")
            + (f"  | skipped {train_stats['skipped']} bad images" if train_stats["skipped"] else ""))
        self.save_last()

    @property
    def test_split(self) -> str | None:
        """The validation data's description of itself when it is its dataset's test split."""
        return getattr(self.data.val, "test_split", None)

    @property
    def pretrained_weights(self) -> str | None:
        """``ARCH.TAG`` of the timm weights the backbone started from (None: not pretrained)."""
        return getattr(getattr(self.model.module, "backbone", None), "pretrained_weights", None)

    def warn_test_split_selection(self) -> None:
        """Say once, at the start of the run, that ``best/`` is selected on a test split."""
        warning = selection_warning(self.cfg.select, self.cfg.val_data or self.cfg.data, self.test_split)
        if warning and self.state.epoch < self.total_epochs:
            self.fabric.print(f"warning: {warning}")
            self.logger.log("warning", self.state.global_step, message=warning)

    def write_summary(self, wall_seconds: float) -> dict[str, Any]:
        state = self.state
        last = state.history[-1] if state.history else {}
        summary = {
            "val_acc1": last.get("val_acc1"), "val_acc5": last.get("val_acc5"), "val_loss": last.get("val_loss"),
            "train_loss": last.get("train_loss"), "best_val_acc1": state.best_acc1, "best_epoch": state.best_epoch,
            "epochs": state.epoch, "steps": state.global_step,
            "images_per_s": state.train_images / max(state.train_seconds, 1e-9),
            "skipped_images": state.skipped, "world_size": self.fabric.world_size,
            "num_classes": self.data.num_classes, "wall_seconds": wall_seconds,
            "best_model": str(self.out / BEST_DIR), "checkpoint": str(self.out / LAST_NAME),
            "selection": summary_entry(self.cfg.select, state.best_epoch, state.best_acc1, state.best_loss,
                                       self.test_split),
            "pretrained_weights": self.pretrained_weights,
            "config": self.cfg.to_dict(),
        }
        if self.is_main:
            (self.out / SUMMARY_NAME).write_text(json.dumps(summary, indent=2))
        return summary
