"""The ``cxrsynth`` command line: one thin command per stage.

Every command reads and writes files in one work folder (``--workdir``, default ``$CXRSYNTH_WORKDIR``
or ``./cxrsynth-work``; its file names belong to ``layout.py``), so the stages chain without flags:

    cxrsynth ingest            upstream folders                 -> records.parquet, ingest_report.json
    cxrsynth split             records.parquet                  -> splits.json
    cxrsynth plan              records.parquet, splits.json     -> plan.json
    cxrsynth train --task ...  plan.json, records.parquet       -> translators/<task>/
    cxrsynth generate          plan.json, translators/          -> generated/<config>/
    cxrsynth release           all of the above (made if need)  -> release/<name>/ (+ <name>.private/)
    cxrsynth audit RELEASE     a release, records, splits       -> audit/ (privacy and quality)
    cxrsynth benchmark         records, splits, a release       -> benchmark/ (classifier arms)
    cxrsynth verify RELEASE    a release folder                 -> problems, one a line (exit 1)
    cxrsynth diff OLD NEW      two release folders              -> what changed
    cxrsynth push RELEASE      a verified release               -> a tagged version on the Hub

``release`` runs plan -> train -> generate -> package -> audit -> describe -> verify -> promote
(``pipeline.py``), configured by one tree: ``--set train.max_steps=5 --set generate.precision=fp32``.

Results go to stdout (``--json`` for machines), progress and logs to stderr. A ``CxrsynthError``
becomes one ``Error: ...`` line and exit code 1, and so do the errors of the machine rather than of
cxrsynth: an ``OSError`` (no space left, read-only file system, permission denied), named by its path,
and a network error (connection refused, time-out), named by its endpoint. Anything else is a bug and
keeps its traceback. Commands that write check their destination first (``locks.check_writable``), so
an unwritable place fails in the first second, not after the work. This is the only module that
imports click.
"""

from __future__ import annotations

import errno
import json
import os
import sys
from pathlib import Path

import click

from . import __version__
from .core.errors import ConfigError, CxrsynthError
from .core.vocab import ARMS, CONFIGS, TASKS

# Where the running command writes: named by the error line of an OSError that carries no path
# (a write() that hits a full disk says only "No space left on device").
_DESTINATION: list[Path] = []


def _workdir(ctx: click.Context) -> Path:
    return Path(ctx.obj["workdir"])


def _layout(ctx: click.Context):
    """The work folder's :class:`~cxrsynth.core.layout.WorkLayout`: commands name no file of it themselves."""
    from .core.layout import WorkLayout

    return WorkLayout(_workdir(ctx))


# The topmost folder each destination made anew: removed again when the command fails and left it with
# nothing but empty folders and free lock files (``locks.remove_if_unused``).
_CREATED: list[Path] = []


def _remember_new(folder: Path) -> None:
    """Note the topmost missing folder of ``folder``'s path, before the command makes it."""
    folder, top = Path(folder).absolute(), None
    while not folder.exists() and folder != folder.parent:
        folder, top = folder.parent, folder
    if top is not None:
        _CREATED.append(top)


def _writes_to(folder: Path, what: str) -> Path:
    """Check that ``folder`` can be written before the command's work starts, and remember it."""
    from .core.locks import check_writable

    _DESTINATION.append(Path(folder))
    _remember_new(Path(folder))
    return check_writable(folder, what)


def _one_writer(folder: Path, name: str, what: str):
    """An exclusive lock on ``folder`` for a stage whose own module takes none (``locks.hold``)."""
    from .core.locks import hold

    return hold(folder, name, what)


def _task_paths(items: tuple[str, ...], option: str) -> dict[str, str]:
    """``TASK=PATH`` items, parsed and checked once: a known task, a path that exists, each task once."""
    out: dict[str, str] = {}
    for item in items:
        task, sep, path = item.partition("=")
        task, path = task.strip(), path.strip()
        if not sep or not path:
            raise ConfigError(f"{option} takes TASK=PATH", item,
                              f"e.g. {option} {TASKS[0]}=translators/{TASKS[0]}")
        if task not in TASKS:
            raise ConfigError(f"{option}: unknown task {task!r}", item, f"tasks: {', '.join(TASKS)}")
        if task in out:
            raise ConfigError(f"{option} names {task} twice", item)
        if not Path(path).exists():
            raise ConfigError(f"{option}: no such file or folder", path,
                              "give a generator.safetensors or its run folder")
        out[task] = path
    return out


def _echo_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


record_paths_option = click.option(
    "--record-paths", is_flag=True,
    help="Record absolute local paths in the JSON outputs (default: relative to the work or output folder, else "
         "a name and sha256, so that results can be shared without user names and home folders).")
config_option = click.option("--config", "config_file", type=click.Path(dir_okay=False),
                             help="YAML or JSON config file for this stage (a model: package.module:factory "
                                  "in it imports and runs that code, as --model does).")


def set_option(example: str):
    """``--set KEY=VALUE``, its help showing a key that this command's config has."""
    return click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                        help=f"Override one config field (repeatable), e.g. --set {example}.")


json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")


class _Stages(click.Group):
    """Lists the commands in the order of the stages, not alphabetically."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


@click.group(cls=_Stages, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cxrsynth")
@click.option("-w", "--workdir", type=click.Path(file_okay=False),
              default=lambda: os.environ.get("CXRSYNTH_WORKDIR", "cxrsynth-work"), show_default="./cxrsynth-work",
              help="Folder where every stage reads its inputs and writes its outputs.")
@click.option("-v", "--verbose", count=True, help="Say more on stderr (repeatable).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr: no stage or progress lines.")
@click.option("--log-file", type=click.Path(dir_okay=False), default=None,
              help="Also write every log line, with a UTC timestamp, to this file (appended).")
@click.pass_context
def cli(ctx: click.Context, workdir: str, verbose: int, quiet: bool, log_file: str | None) -> None:
    """Synthetic COVID-19 chest X-rays, made reproducibly and judged honestly.

    Each stage reads the previous stage's files in the work folder and writes its own:

    \b
      ingest     upstream folders             -> records.parquet, ingest_report.json
      split      records.parquet              -> splits.json (patient-level)
      plan       records, splits              -> plan.json (what a release will make)
      train      plan, records                -> translators/<task>/ (one CycleGAN)
      generate   plan, translators            -> generated/<config>/ (PNGs + provenance)
      release    all of the above             -> release/<name>/ (verified; trains and
                                                 generates what is missing)
      verify     a release folder             -> its problems, one a line
      push       a verified release           -> a tagged version on the Hub
      diff       two release folders          -> what changed
      benchmark  records, splits, a release   -> benchmark/ (classifiers per arm)
      audit      a release, records, splits   -> audit/ (privacy and quality)

    Run `cxrsynth COMMAND --help` for a stage's options; --set KEY=VALUE overrides its config.
    """
    from .core.progress import configure

    configure(-1 if quiet else verbose, log_file)
    ctx.ensure_object(dict)
    ctx.obj["workdir"] = workdir


@cli.command()
@click.argument("sources", nargs=-1, type=click.Path(file_okay=False))
@click.option("--format", "formats", multiple=True,
              type=click.Choice(["covid-collection", "nih", "rsna", "imagefolder"]),
              help="Format of each SOURCE, in order (default: detected from the files).")
@click.option("--workers", type=int, default=None, help="Decoding processes (default 0: this process).")
@config_option
@set_option("nih.min_age=16")
@json_option
@click.pass_context
def ingest(ctx, sources, formats, workers, config_file, overrides, as_json):
    """Read upstream folders into one record table.

    SOURCES are folders in an upstream layout (COVID-19 Image Data Collection, NIH ChestX-ray14, RSNA
    Pneumonia Detection Challenge, or <label>/ image folders). Default: every recognised folder of
    $CXRSYNTH_SAMPLE_DATA (../shared/data). Writes records.parquet and ingest_report.json.
    """
    from .core.config import resolve
    from .stages.ingest import IngestConfig, default_roots, ingest as run
    from .core.paths import require_sample_data

    roots = [Path(s) for s in sources] or default_roots(require_sample_data())
    if formats and len(formats) != len(roots):
        raise click.UsageError("give --format once per SOURCE, or not at all")
    cfg = resolve(IngestConfig, config_file, overrides, given={"workers": workers})
    _writes_to(_workdir(ctx), "work folder")
    with _one_writer(_workdir(ctx), "ingest", "the work folder's record table"):
        result = run(roots, cfg, _workdir(ctx), list(formats) or None, progress=True)
    if as_json:
        _echo_json(result.report["totals"])
        return
    tot = result.report["totals"]
    for name, c in result.report["collections"].items():
        click.echo(f"{name} ({c['format']}): {c['rows_read']:,} rows -> {c['records']:,} records "
                   f"({c['with_pixels']:,} with pixels), excluded {sum(c['excluded'].values()):,}, "
                   f"missing {c['missing_files']:,}, bad {c['bad_files']:,}, duplicates dropped {c['duplicates_dropped']:,}")
    click.echo(f"total: {tot['records']:,} records ({tot['with_pixels']:,} with pixels, {tot['label_only']:,} label-only), "
               f"{tot['patients']:,} patients, by label {tot['by_label']}")
    click.echo(f"report: {result.report_path}  (problems: {tot['problems']}, bad files: {tot['bad_files']}, "
               f"missing files: {tot['missing_files']})")


@cli.command()
@click.option("--method", type=click.Choice(["rigorous", "paper"]), default=None,
              help="rigorous: patient-level train/validation/test (default); paper: the original row rule.")
@click.option("--seed", type=int, default=None, help="Seed of the split's random order (default 0).")
@click.option("--patient-map", "patient_maps", multiple=True, type=click.Path(dir_okay=False),
              help="RSNA's pneumonia-challenge-dataset-mappings_2018.json and/or NIH's Data_Entry_2017.csv: "
                   "group RSNA images by NIH patient (without, RSNA is split per image).")
@config_option
@set_option("fractions=[0.8,0.1,0.1]")
@json_option
@click.pass_context
def split(ctx, method, seed, patient_maps, config_file, overrides, as_json):
    """Split the records into train / validation / test; writes splits.json."""
    from .core.config import resolve
    from .data.identity import load_identity
    from .data.records import read_records
    from .stages.splits import SPLITS, SplitConfig, make_splits

    cfg = resolve(SplitConfig, config_file, overrides, given={"method": method, "seed": seed})
    _writes_to(_workdir(ctx), "work folder")
    layout = _layout(ctx)
    manifest = make_splits(read_records(layout.records), cfg, layout.records, layout.splits,
                           identity=load_identity(patient_maps) if patient_maps else None)
    if as_json:
        _echo_json({k: manifest[k] for k in ("counts", "patients", "skew", "leakage", "patient_identity", "notes")})
        return
    click.echo(f"{cfg.method} split (seed {cfg.seed}), leakage check: "
               f"{manifest['leakage']['patients_in_several_splits']} patients in several splits")
    for s in SPLITS:
        sk = ", ".join(f"{t} {v:.2f}" if v is not None else f"{t} -" for t, v in manifest["skew"][s].items())
        click.echo(f"  {s:10s} {manifest['counts'][s]}  patients {manifest['patients'][s]:,}  skew: {sk}")
    for note in manifest["notes"]:
        click.echo(f"  note: {note}")


@cli.command()
@click.option("--per-domain", type=int, default=None, help="Translator training images per domain (default 180).")
@config_option
@set_option("seed=1")
@json_option
@click.pass_context
def plan(ctx, per_domain, config_file, overrides, as_json):
    """Say what a release will make (translator sets, images to translate, arm skews); writes plan.json."""
    from .core.config import resolve
    from .core.paths import read_json
    from .stages.plan import PlanConfig, format_plan, make_plan
    from .data.records import read_records

    cfg = resolve(PlanConfig, config_file,
                  overrides, given={"per_domain": per_domain})
    _writes_to(_workdir(ctx), "work folder")
    layout = _layout(ctx)
    result = make_plan(read_records(layout.records), read_json(layout.splits), cfg, layout.plan)
    if as_json:
        _echo_json({"totals": result["totals"], "tasks": {
            t: {k: v for k, v in d.items() if k != "translate"} | {"translate": {"n": d["translate"]["n"], "with_pixels": d["translate"]["with_pixels"]}}
            for t, d in result["tasks"].items()}})
    else:
        click.echo(format_plan(result))


@cli.command()
@click.option("--task", type=click.Choice(TASKS), required=True, help="Which translator: Normal -> COVID-19 or Pneumonia -> COVID-19.")
@click.option("--preset", type=click.Choice(["canonical", "paper", "refined", "refined-thumbnail"]), default=None,
              help="Recipe: canonical (junyanz ResNet CycleGAN, the default), paper (the authors' U-Net, batch 16, "
                   "100 epochs) or refined (paper + resize-conv, reflection padding, spectral norm in D, an EMA "
                   "generator; chosen on held-out fidelity). Explicit --set values override the preset's.")
@click.option("--resume", is_flag=True, help="Continue the run in the output folder from its latest checkpoint.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Run folder (default: WORKDIR/translators/TASK).")
@click.option("--max-steps", type=int, default=None, help="Stop after this many steps (quick runs).")
@click.option("--size", type=int, default=None, help="Image side (default 256; 128 uses 6 residual blocks).")
@click.option("--device", default=None, help="auto (default), cpu, cuda, cuda:N or mps.")
@config_option
@set_option("lr=0.0001")
@json_option
@click.pass_context
def train(ctx, task, preset, resume, out, max_steps, size, device, config_file, overrides, as_json):
    """Train one CycleGAN translator on the plan's balanced sets.

    Writes checkpoints (safetensors + JSON), losses.csv, sample grids, generator.safetensors and a
    model card into the run folder. Under torchrun it trains with DistributedDataParallel.
    """
    from .core.layout import TranslatorFolder
    from .core.paths import read_json
    from .core.runtime import Ranks, Runtime
    from .stages.translate.train import resolve_train_config, train as run

    given = {"task": task, "max_steps": max_steps, "size": size, "device": device, "preset": preset}
    folder = TranslatorFolder(out) if out else _layout(ctx).translator(task)
    # a resumed run starts from its own saved config (the preset included); the guard in train() refuses changes
    base = read_json(folder.config) if resume and folder.config.is_file() else None
    cfg = resolve_train_config(config_file, overrides, base=base, given=given)
    _writes_to(folder.root, "translator run folder")  # after the options are checked
    rt = Runtime.resolve(cfg.device, cfg.precision, cfg.channels_last)  # this command's one Runtime
    report = run(_workdir(ctx), cfg, resume=resume, out_dir=out, progress=True, rt=rt)
    if not Ranks.from_env().main:
        return
    if as_json:
        _echo_json(report)
    else:
        click.echo(f"{task}: {report['steps']}/{report['total_steps']} steps on {report['device']} "
                   f"({report['precision']}), {report['seconds_per_step']} s/step; "
                   f"translator {report['translator_id']}")


def launcher_options(f):
    """``--launcher serial|local|slurm`` and its options, shared by benchmark, generate and release."""
    opts = [
        click.option("--launcher", "launcher_kind", type=click.Choice(["serial", "local", "slurm"]), default=None,
                     help="Where the jobs run: here, one after another (serial, the default), as local "
                          "subprocesses (local) or as a SLURM job array (slurm), through submitit."),
        click.option("--launcher-config", type=click.Path(dir_okay=False, exists=True), default=None,
                     help="YAML file with a `slurm:` section (partition, gpus_per_job, cpus_per_job, time_min, "
                          "array_parallelism, options, setup); command-line options win."),
        click.option("--slurm-partition", default=None, help="SLURM partition."),
        click.option("--slurm-gpus-per-job", type=int, default=None, help="GPUs per job (gpus-per-node)."),
        click.option("--slurm-cpus-per-job", type=int, default=None, help="CPUs per job (cpus-per-task)."),
        click.option("--slurm-time", type=int, default=None, metavar="MINUTES",
                     help="Time limit of each job in minutes (default 240)."),
        click.option("--slurm-array-parallelism", type=int, default=None,
                     help="At most this many jobs of the array run at once."),
        click.option("--slurm-option", "slurm_options", multiple=True, metavar="KEY=VALUE",
                     help="Extra sbatch option (repeatable), e.g. --slurm-option account=proj42; KEY alone for a flag."),
        click.option("--slurm-setup", "slurm_setup", multiple=True, metavar="LINE",
                     help="Shell line the job script runs before the job (repeatable), e.g. "
                          "--slurm-setup 'module load cuda' --slurm-setup 'source /scratch/env/bin/activate'."),
        click.option("--local-parallelism", type=int, default=None,
                     help="With --launcher local: at most this many subprocesses at once (default: CPUs, at most 4)."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _launcher(opts: dict):
    """The :class:`~cxrsynth.launch.Launcher` the ``launcher_options`` describe."""
    from .launch import launcher_from_cli

    return launcher_from_cli(
        opts["launcher_kind"], opts["launcher_config"], partition=opts["slurm_partition"],
        gpus_per_job=opts["slurm_gpus_per_job"], cpus_per_job=opts["slurm_cpus_per_job"], time_min=opts["slurm_time"],
        array_parallelism=opts["slurm_array_parallelism"], options=tuple(opts["slurm_options"]),
        setup=tuple(opts["slurm_setup"]),
        local_parallelism=opts["local_parallelism"])


@cli.command()
@click.option("--generator", "generators", multiple=True, metavar="TASK=PATH",
              help="Generator file for a task (default: WORKDIR/translators/TASK/generator.safetensors).")
@click.option("--configs", default=None, help=f"Comma-separated configs to make (default {','.join(CONFIGS)}).")
@click.option("--limit", type=int, default=None, help="Only the first N planned images per config.")
@click.option("--batch-size", type=int, default=None, help="Images translated at once (default 8).")
@click.option("--rank", type=int, default=None, help="This process's share of the shards (default: $RANK or 0).")
@click.option("--world", type=int, default=None, help="Number of processes sharing the shards (default: $WORLD_SIZE "
              "or 1; with --launcher local|slurm: the number of jobs, default one per shard).")
@launcher_options
@config_option
@set_option("precision=fp32")
@json_option
@click.pass_context
def generate(ctx, generators, configs, limit, batch_size, rank, world, config_file, overrides, as_json, **launch_opts):
    """Translate every planned source image into a synthetic COVID-19 PNG with provenance.

    Resumable: finished shards are checked and kept, a rerun does only what is missing. With
    --launcher local|slurm, job i of --world N runs rank i (logs in WORKDIR/generated/jobs/).
    """
    from .core.config import resolve
    from .stages.generate import GenerateConfig, check_ranks, runtime_of
    from .pipeline import generate_in
    from .core.runtime import Ranks

    launcher = _launcher(launch_opts)
    gens = _task_paths(generators, "--generator")
    cfg = resolve(GenerateConfig, config_file, overrides,
                  given={"configs": configs, "limit": limit, "batch_size": batch_size})
    if rank is not None and launcher.kind != "serial":
        raise click.UsageError("with --launcher each job gets its rank; give only --world (the number of jobs)")
    if launcher.kind == "serial" and (rank is not None or world is not None):
        env = Ranks.from_env()
        check_ranks(env.rank if rank is None else rank, env.world if world is None else world)
    _writes_to(_layout(ctx).generated, "generated images folder")
    if launcher.kind == "serial":
        report = generate_in(_workdir(ctx), cfg, gens, progress=True, rt=runtime_of(cfg, rank, world))
    else:
        from .pipeline import generate_launched

        report = generate_launched(_workdir(ctx), cfg, gens, world, launcher, echo=lambda x: click.echo(x, err=True))
    if as_json:
        _echo_json(report)
        return
    for config, s in report["configs"].items():
        click.echo(f"{config}: {s['generated']:,} generated, {s['shards_skipped_done']} finished shards kept, "
                   f"{s['to_generate']:,} to make of {s['planned']:,} planned ({s['label_only_skipped']:,} label-only skipped); "
                   f"translator {s['translator_id']}"
                   + (f"; {s['images_per_second']} img/s" if s["images_per_second"] else ""))


@cli.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Where the release folder goes (default: WORKDIR/release).")
@click.option("--version", "version", default=None, help="Release version, e.g. 1.0.0.")
@click.option("--translator", "translators", multiple=True, metavar="TASK=PATH",
              help="Use this generator for a task instead of training one.")
@click.option("--preset", type=click.Choice(["canonical", "paper", "refined", "refined-thumbnail"]), default=None,
              help="Translator recipe for translators trained here (see `cxrsynth train --help`); "
                   "the same as --set train.preset=NAME.")
@click.option("--train-set", "old_train_set", multiple=True, hidden=True)  # replaced by --set train.KEY=VALUE
@click.option("--limit", type=int, default=None,
              help="Generate only the first N planned images per config (--set generate.limit=N).")
@click.option("--replace", is_flag=True, help="Move an existing release folder aside and make a new one.")
@click.option("--external", "externals", multiple=True, metavar="NAME=DIR",
              help="Real COVID-19 X-rays of another collection for the audit's 'another hospital' fidelity baseline "
                   "(as `cxrsynth audit --external`); repeatable.")
@click.option("--audit/--no-audit", "run_audit", default=True, show_default=True,
              help="Audit the staged release (privacy and quality) and put the results in the card.")
@launcher_options
@config_option
@set_option("train.max_steps=5")
@json_option
@click.pass_context
def release(ctx, out_dir, version, translators, preset, old_train_set, limit, replace, externals, run_audit,
            config_file, overrides, as_json, **launch_opts):
    """Make a verified release: plan -> train -> generate -> package -> audit -> card -> verify -> promote.

    One config tree for every stage: --set SECTION.KEY=VALUE with SECTION release, plan, train,
    generate or audit (e.g. --set train.max_steps=5 --set generate.precision=fp32); release keys may
    drop their prefix (--set version=1.2.0). Resumable; writes into a staging folder and renames it into
    place only when verify passes. The private id mapping goes into a folder beside the release, never
    into it. With --launcher local|slurm the two translators train as two jobs at once (logs in
    OUT/jobs/); the rest runs here.
    """
    from .stages.generate import runtime_of as generate_runtime
    from .pipeline import release as run, resolve_pipeline
    from .stages.external_sets import parse_externals

    launcher = _launcher(launch_opts)
    external_sets = parse_externals(externals)  # a bad NAME=DIR fails here, before any work
    if old_train_set:
        raise click.UsageError("--train-set is gone: use --set train.KEY=VALUE (e.g. --set train.max_steps=5)")
    cfg = resolve_pipeline(config_file, overrides,
                           given={"release.version": version, "generate.limit": limit, "train.preset": preset})
    trans = _task_paths(translators, "--translator")
    out = Path(out_dir) if out_dir else _layout(ctx).release
    _DESTINATION.append(out)  # the pipeline checks it (and the work folder) before any work
    _remember_new(out)
    _remember_new(_workdir(ctx))
    manifest = run(_workdir(ctx), out, cfg, trans, replace, progress=True, audit=run_audit,
                   launcher=launcher, rt=generate_runtime(cfg.generate),  # one Runtime for every stage
                   externals=external_sets)
    if as_json:
        _echo_json({k: manifest[k] for k in ("name", "version", "counts", "translators")})
    else:
        counts = ", ".join(f"{config} {n:,}" for config, n in manifest["counts"].items())
        click.echo(f"release {manifest['name']} {manifest['version']}: {counts} images -> "
                   f"{out / cfg.release.name} (verified)")


@cli.command()
@click.argument("release_dir", type=click.Path(file_okay=False))
@click.option("--private", type=click.Path(file_okay=False), default=None,
              help="The private folder with identifiers.json (default: RELEASE_DIR.private beside it; "
                   "without one verify fails unless --no-identifiers).")
@click.option("--croissant", "croissant_strict", is_flag=True, help="Also validate croissant.json with mlcroissant.")
@click.option("--no-identifiers", is_flag=True,
              help="Verify without the private identifiers.json (the source-identifier scan is then skipped).")
@click.option("--benchmark", "benchmark_dir", type=click.Path(file_okay=False), default=None, metavar="BENCH_DIR",
              help="The benchmark folder the card's Benchmark and External test set sections were made from "
                   "(stamped with this release): those sections are rendered again from it and compared. "
                   "Without it they are not checked (a release holds no benchmark results).")
def verify(release_dir, private, croissant_strict, no_identifiers, benchmark_dir):
    """Check a release folder: only regular, listed files; checksums, schemas, rows against provenance,
    the manifest against the rows, the card and croissant.json as the manifest generates them (with
    --benchmark, the card's benchmark sections as that folder renders them); no leaks.

    Prints each problem and exits 1 when there is any.
    """
    from .stages.release.verify import verify as run

    problems = run(release_dir, private, croissant_strict, no_identifiers=no_identifiers, benchmark=benchmark_dir)
    if not benchmark_dir:  # on stderr: stdout stays the problems and the verdict, for scripts
        click.echo("note: the card's Benchmark and External test set sections were not checked (a release holds no "
                   "benchmark results; --benchmark BENCH_DIR checks them)", err=True)
    for p in problems:
        click.echo(f"FAIL {p}")
    if problems:
        click.echo(f"{release_dir}: {len(problems)} problem{'s' if len(problems) != 1 else ''}", err=True)
        sys.exit(1)
    skipped = no_identifiers and not private
    click.echo(f"{release_dir}: OK" + (" (without the source-identifier scan: --no-identifiers)" if skipped else ""))


@cli.command()
@click.argument("release_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--repo-id", required=True, help="ORG/NAME on the Hub (or on the server in $HF_ENDPOINT).")
@click.option("--tag", default=None, help="Tag to create (default: v<manifest version>); git's ref-name rules "
                                          "apply, and a branch name (main) is refused.")
@click.option("--private/--public", "private_repo", default=None,
              help="Make the repo private or public (an existing repo's visibility is changed); default: leave it "
                   "(a new repo is public, and gated).")
@click.option("--gated", type=click.Choice(["auto", "manual", "off"]), default=None,
              help="Access requests: approved automatically or by hand, or off; default: manual for a new repo, "
                   "an existing one's left as it is. A public ungated repo needs --public --gated off.")
@click.option("--contact", default=None, metavar="EMAIL-OR-URL",
              help="Where questions and takedown requests go; stored in the published manifest and shown in the "
                   "card (default: the release's, else the one on main; a new version needs one).")
@click.option("--allow-older", is_flag=True,
              help="Publish a version lower than the highest v* tag on the repo (main then serves it); refused without.")
@click.option("--restore-main", is_flag=True,
              help="When this version is already tagged but main holds another one, commit its files to main again.")
@click.option("--dry-run", is_flag=True, help="Say what would be uploaded; contact nothing.")
@json_option
def push(release_dir, repo_id, tag, private_repo, gated, contact, allow_older, restore_main, dry_run, as_json):
    """Publish a verified release as one version (a tag) of a Hub dataset repo.

    Files the new version no longer has are deleted from main; a tag is never moved to other files; a
    rerun completes an interrupted push. The token comes from HF_TOKEN or `hf auth login`, and is never printed.
    """
    from .stages.release.hub import push as run

    rep = run(release_dir, repo_id, tag, private_repo, dry_run, gated=gated, allow_older=allow_older,
              restore_main=restore_main, contact=contact)
    if as_json:
        _echo_json(rep.__dict__)
        return
    if dry_run:
        click.echo(f"{repo_id}: would upload {len(rep.uploaded)} files, tag {rep.tag}")
        return
    click.echo(f"{repo_id}: uploaded {len(rep.uploaded)} files, {len(rep.unchanged)} already there, deleted "
               f"{len(rep.deleted)}, {len(rep.commits)} commits; tag {rep.tag} on {rep.tag_commit}")
    for note in rep.notes:
        click.echo(f"  {note}")


@cli.command()
@click.argument("old", type=click.Path(file_okay=False, exists=True))
@click.argument("new", type=click.Path(file_okay=False, exists=True))
@click.option("--write", is_flag=True, help="Also put the changes into NEW's card (its Changes section) and SHA256SUMS.")
@json_option
def diff(old, new, write, as_json):
    """What changed between two release folders: counts, translators, licences, files."""
    from .stages.release.diff import changes_markdown, diff_releases, write_changes

    d = diff_releases(old, new)
    if write:
        write_changes(new, d)
    for note in d["warnings"]:
        click.echo(f"WARNING: {note}", err=True)
    if as_json:
        _echo_json(d)
        return
    click.echo(changes_markdown(d))
    click.echo(f"written into {Path(new) / 'README.md'}" if write else "(--write puts this into NEW's card)", err=True)


@cli.command()
@click.option("--release", default=None,
              help="Synthetic release: a folder, or a Hub id ORG/NAME[@REVISION] (a tag such as v1.0.1, a branch or "
                   "a commit; default main). A Hub revision is resolved to its commit, which results.json records.")
@click.option("--revision", default=None, help="The Hub revision of --release (the same as ORG/NAME@REVISION).")
@click.option("--translator", "translators", multiple=True, metavar="TASK=PATH",
              help="Judge translators instead of a release: their images are generated first (cached).")
@click.option("--model", default=None,
              help="vgg16 (default), resnet50, densenet121, any torchvision classifier, timm:NAME or "
                   "package.module:factory (imports that module and runs that function: name only code you trust).")
@click.option("--init", default=None,
              help="imagenet (default, torchvision models; local torch cache only), random, or a checkpoint path.")
@click.option("--protocol", type=click.Choice(["rigorous", "paper"]), default=None,
              help="rigorous (default): selection on validation, several seeds; paper: the original, test-set selection.")
@click.option("--seeds", type=int, default=None, help="Seeds per arm (default 5 rigorous, 1 paper).")
@click.option("--task", "tasks", multiple=True, type=click.Choice(TASKS), help="Only this task (repeatable; default both).")
@click.option("--arm", "arms", multiple=True, type=click.Choice(ARMS), help="Only this arm (repeatable; default all).")
@click.option("--max-epochs", type=int, default=None, help="Epochs per classifier at most (early stopping may end sooner).")
@click.option("--image-size", type=int, default=None,
              help="Classifier input side in pixels (default 256; with --eval-only, the side the file records).")
@click.option("--limit", type=int, default=None,
              help="At most N images per class and split (quick looks); with --translator only N a config are translated.")
@click.option("--eval-only", "eval_only", default=None, metavar="CHECKPOINT",
              help="Score a trained classifier on the test split (needs one --task), no training: a cxrsynth "
                   "model.safetensors, or a --model's own state dict whose head has 1 logit (sigmoid) or 2 (softmax).")
@click.option("--threshold", default=None, metavar="NUMBER|youden",
              help="--eval-only: decision threshold on the COVID-19 probability, or youden (chosen on the validation "
                   "split). Default: as --protocol (youden for rigorous, 0.5 for paper).")
@click.option("--normalize", type=click.Choice(["none", "imagenet", "xrv"]), default=None,
              help="--eval-only: the input the classifier was trained on: none = [0, 1] (default, as the benchmark "
                   "trains), imagenet = ImageNet mean/std, xrv = torchxrayvision's [-1024, 1024].")
@click.option("--positive-index", type=click.IntRange(0, 1), default=None,
              help="--eval-only, 2-logit heads: which output is COVID-19 (default 1).")
@click.option("--external", "externals", multiple=True, metavar="NAME=DIR",
              help="An external test set (any folder `cxrsynth ingest` reads) scored by every model; repeatable.")
@click.option("--allow-foreign-release", is_flag=True,
              help="Run on a release made from another split or plan (refused otherwise); stated in every output.")
@click.option("--select-on", "select_on", type=click.Choice(["test", "validation"]), default=None,
              help="validation: judge translators (--translator) without touching test: score the validation split "
                   "only (test is never read; no controls or figures). Default test.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Run folder (default: WORKDIR/benchmark).")
@click.option("--status", "status_dir", type=click.Path(file_okay=False, exists=True), default=None, metavar="OUT",
              help="Say which cells of the benchmark in OUT are done, running, failed or missing; run nothing.")
@record_paths_option
@launcher_options
@config_option
@set_option("fit.max_epochs=10")
@json_option
@click.pass_context
def benchmark(ctx, release, revision, translators, model, init, protocol, seeds, tasks, arms, max_epochs, image_size,
              limit, eval_only, threshold, normalize, positive_index, externals, allow_foreign_release, select_on, out_dir,
              status_dir, record_paths, config_file, overrides, as_json, **launch_opts):
    """Train and score classifiers on the real / real+synthetic / synthetic-only arms.

    Writes results.json, tables.md/csv, figures/ and report.html; finished runs are kept on a rerun.
    With --launcher local|slurm each cell (task, arm, seed) is one job; a failed cell is named with its
    log, and rerunning the same command runs only the cells that are not finished.
    """
    from .stages.external_sets import parse_externals
    from .stages.benchmark.evaluate import evaluate
    from .pipeline import benchmark_in
    from .stages.benchmark.run import BenchmarkConfig, runtime_of
    from .core.config import resolve
    from .core.layout import BenchmarkFolder

    if status_dir:
        _benchmark_status(Path(status_dir), as_json)
        return
    if as_json:
        raise click.UsageError("--json goes with --status")
    launcher = _launcher(launch_opts)

    cfg = resolve(BenchmarkConfig, config_file, overrides, given={
        "model": model, "init": init, "protocol": protocol, "seeds": seeds, "fit.max_epochs": max_epochs,
        "image_size": image_size, "limit": limit, "tasks": tuple(tasks) or None, "arms": tuple(arms) or None,
        "select_on": select_on})
    trans = _task_paths(translators, "--translator")
    if revision and not release:
        raise click.UsageError("--revision goes with --release ORG/NAME")
    if revision:
        from .artifacts.release_ref import parse

        release = str(parse(release, revision))
    if eval_only and len(cfg.tasks) != 1:
        raise click.UsageError("--eval-only needs exactly one --task")
    if eval_only and launcher.kind != "serial":
        raise click.UsageError("--eval-only trains nothing: it runs here, without --launcher")
    if not eval_only and (threshold, normalize, positive_index) != (None, None, None):
        raise click.UsageError("--threshold, --normalize and --positive-index go with --eval-only")
    out = _writes_to(Path(out_dir) if out_dir else _layout(ctx).benchmark, "benchmark output folder")
    # the one Runtime of this command (device, fit.precision, fit.channels_last); launched cells choose
    # theirs on the machine they run on, which this one (a login node) may not be
    rt = runtime_of(cfg) if launcher.kind == "serial" else None
    with _one_writer(out, "benchmark", f"the benchmark folder {out}"):
        if eval_only:
            named = model or config_file or any(o.startswith("model=") for o in overrides)  # else: the file's own
            sized = image_size or config_file or any(o.startswith("image_size=") for o in overrides)  # likewise
            summary = evaluate(eval_only, cfg.tasks[0], _workdir(ctx), model=cfg.model if named else None,
                               threshold=threshold,
                               normalize=normalize or "none", positive_index=positive_index,
                               image_size=cfg.image_size if sized else None, limit=cfg.limit, protocol=cfg.protocol,
                               bootstrap=cfg.bootstrap, device=cfg.device, externals=parse_externals(externals),
                               out_dir=out, figures=cfg.figures,
                               record_paths=record_paths, rt=rt).results
        else:
            summary = benchmark_in(_workdir(ctx), out, cfg, release, trans or None, progress=True,
                                   externals=parse_externals(externals), allow_foreign_release=allow_foreign_release,
                                   launcher=launcher, echo=lambda line: click.echo(line, err=True),
                                   record_paths=record_paths, rt=rt).summary
    for note in summary.get("notices") or []:
        click.echo(f"WARNING: {note}", err=True)
    files = BenchmarkFolder(out)
    click.echo(files.tables.read_text())
    click.echo(f"report: {files.report}")


def _benchmark_status(out: Path, as_json: bool) -> None:
    """``benchmark --status OUT``: one line per cell (with its job id and log when it was launched),
    the counts, and where the states came from: SLURM's ``sacct`` when it answers, else ``scontrol``,
    else the files alone."""
    from .stages.benchmark.run import CELL_STATES, benchmark_status
    from .launch import scheduler_view

    st = benchmark_status(out)
    st["states_from"] = scheduler_view(st["cells"])
    st["counts"] = {s: sum(c["state"] == s for c in st["cells"]) for s in CELL_STATES}
    if as_json:
        _echo_json(st)
        return
    for c in st["cells"]:
        job = f"job {c['job_id']}, log {c['log']}" if c.get("job_id") and c["log"] else None
        extra = "; ".join(x for x in (c["detail"], job) if x)
        click.echo(f"{c['state']:8s} {c['cell']}" + (f"  ({extra})" if extra else ""))
    counts = ", ".join(f"{n} {s}" for s, n in st["counts"].items())
    click.echo(f"{out}: {counts} of {len(st['cells'])} cells; results.json "
               + ("written" if st["results"] else "not written yet") + f"; states from {st['states_from']}")


@cli.command()
@click.argument("release_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--private", type=click.Path(file_okay=False), default=None,
              help="The private folder with mapping.jsonl (default: RELEASE_DIR.private beside it).")
@click.option("--embedding", default=None,
              help="auto (default: pixels, plus this work folder's own benchmark classifier when its result.json "
                   "and sha256 check out; any other file is skipped with a line saying why), pixels, or classifier:PATH "
                   "(a cxrsynth classifier safetensors of a torchvision or timm: architecture; a file naming "
                   "package.module:factory is refused, since a file never chooses code to run).")
@click.option("--exclude-closest", type=float, default=None,
              help="Also write exclude_ids.txt with this share of images closest to their sources (e.g. 0.05).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None, help="Default: WORKDIR/audit.")
@click.option("--external", "externals", multiple=True, metavar="NAME=DIR",
              help="Real COVID-19 X-rays of another collection (any folder `cxrsynth ingest` reads, as the "
                   "benchmark's --external): a third fidelity baseline, 'another hospital'; repeatable.")
@record_paths_option
@config_option
@set_option("sample=500")
@json_option
@click.pass_context
def audit(ctx, release_dir, private, embedding, exclude_closest, out_dir, externals, record_paths, config_file, overrides,
          as_json):
    """Measure a release's privacy (linkage, similarity, DCR, authenticity, copying, inverse recovery)
    and quality (FID, KID, precision/recall/density/coverage); writes audit.json, per_image.csv, figures.

    `cxrsynth release` then puts the results in the dataset card.
    """
    from .pipeline import audit_in
    from .stages.audit.run import AuditConfig, runtime_of
    from .stages.external_sets import parse_externals
    from .stages.audit.verdicts import caveat_after
    from .core.config import resolve

    cfg = resolve(AuditConfig, config_file, overrides, given={"embedding": embedding, "exclude_closest": exclude_closest})
    out = _writes_to(Path(out_dir) if out_dir else _layout(ctx).audit, "audit output folder")
    with _one_writer(out, "audit", f"the audit folder {out}"):
        result = audit_in(_workdir(ctx), release_dir, cfg, private, out, record_paths=record_paths, rt=runtime_of(cfg),
                          externals=parse_externals(externals))
    if as_json:
        _echo_json(result.summary)
        return
    click.echo(result.summary["text"].replace("**", ""))
    for v in result.summary["verdicts"]:
        mark = "FLAG" if v["flagged"] else "low " if v.get("significant") else "ok  "
        click.echo(f"  {mark} {v['name']}: {v['verdict']} ({v['detail']})")
        if caveat_after(v):
            click.echo(f"       {caveat_after(v)}")


def main(argv: list[str] | None = None) -> None:
    from .core.locks import MADE

    _DESTINATION.clear()
    _CREATED.clear()
    MADE.clear()
    done = False
    try:
        cli.main(args=argv, prog_name="cxrsynth", standalone_mode=False)
        done = True
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except CxrsynthError as exc:
        click.echo(f"Error: {exc.one_line()}", err=True)
        sys.exit(1)
    except Exception as exc:
        line = _network_error(exc) or (_os_error(exc) if isinstance(exc, OSError) else None)
        if line is None:
            raise  # a bug: keep the traceback
        click.echo(f"Error: {line}", err=True)
        sys.exit(1)
    finally:
        if not done:  # a failed command leaves no lock file, nor empty folder, that it made itself
            from .core.locks import MADE, remove_free_locks, remove_if_unused

            remove_free_locks(MADE)
            for folder in reversed(_CREATED):
                remove_if_unused(folder)


_NETWORK_LIBRARIES = {"httpx", "httpx2", "httpcore", "requests", "urllib3"}
_NETWORK_ERRORS = {"TransportError", "NetworkError", "TimeoutException", "ConnectError", "ConnectTimeout",
                   "ConnectionError", "Timeout", "ProxyError", "SSLError", "NewConnectionError", "MaxRetryError"}


def _network_error(exc: BaseException) -> str | None:
    """One line for a failed connection (httpx, which huggingface_hub uses, or requests), naming the
    endpoint without its query string; ``None`` for anything else."""
    if not any(c.__module__.split(".")[0] in _NETWORK_LIBRARIES and c.__name__ in _NETWORK_ERRORS
               for c in type(exc).__mro__):
        return None
    try:
        url = str(exc.request.url)  # httpx raises RuntimeError when the request is unknown
    except Exception:  # noqa: BLE001
        url = ""
    from urllib.parse import urlsplit

    parts = urlsplit(url or os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    port = f":{parts.port}" if parts.port else ""
    endpoint = f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"  # without user info or query
    reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    return (f"cannot reach {endpoint} ({reason}); check the network connection, HF_ENDPOINT and any proxy "
            "settings, then rerun (a push resumes where it stopped)")


_OS_HINTS = {
    errno.ENOSPC: "free some space or write somewhere else; nothing half-made was put in place",
    errno.EDQUOT: "free some space or write somewhere else; nothing half-made was put in place",
    errno.EROFS: "write somewhere writable (see --workdir and --out)",
    errno.EACCES: "check the permissions, or write somewhere else (see --workdir and --out)",
    errno.EPERM: "check the permissions, or write somewhere else (see --workdir and --out)",
}


def _os_error(exc: OSError) -> str:
    """``<reason> (<path>); <what to do>``; the path is the command's destination when the OS gave none."""
    # the system's words for the errno: pyarrow's strerror is "Error writing bytes to file. Detail: ..."
    reason = os.strerror(exc.errno) if exc.errno else (exc.strerror or str(exc) or type(exc).__name__)
    where = exc.filename
    if where is None and _DESTINATION:
        where = f"writing under {_DESTINATION[-1]}"
    text = reason + (f" ({where})" if where is not None else "")
    hint = _OS_HINTS.get(exc.errno)
    return text + (f"; {hint}" if hint else "")


if __name__ == "__main__":
    main()
