"""The generated images of one work folder (``WORKDIR/generated``): shards, provenance, private mapping.

``generate`` writes, per config (``g_nc``, ``g_pc``)::

    generated/<config>/layout.json              which shards make up the config now (written first)
    generated/<config>/shard-XXXXX/<id>.png     the images
    generated/<config>/shard-XXXXX/provenance.jsonl
    generated/<config>/shard-XXXXX.done.json    the marker, written last: count, key, provenance sha256
    generated/private/<config>/shard-XXXXX.jsonl  synthetic id -> source record (never published)
    generated/private/id_secret                 the HMAC secret behind the opaque ids

Everything that reads those files (package, the tests, the benchmark's translator cache) goes through
:class:`GeneratedSet`, so the layout is written down once, here, and a shard is judged finished by one
rule (:meth:`GeneratedSet.shard_is_done`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import DataNotFoundError
from ..core.paths import read_json, read_jsonl, sha256_file


def shard_name(k: int) -> str:
    return f"shard-{k:05d}"


@dataclass(frozen=True)
class GeneratedSet:
    """``WORKDIR/generated`` (or any folder ``generate`` wrote), by name; reading is lazy."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    # --- names -------------------------------------------------------------------------------------
    def config_dir(self, config: str) -> Path:
        return self.root / config

    def layout_path(self, config: str) -> Path:
        return self.root / config / "layout.json"

    def shard_dir(self, config: str, name: str) -> Path:
        return self.root / config / name

    def marker(self, config: str, name: str) -> Path:
        return self.root / config / f"{name}.done.json"

    def private_mapping(self, config: str, name: str) -> Path:
        return self.root / "private" / config / f"{name}.jsonl"

    @property
    def secret_path(self) -> Path:
        return self.root / "private" / "id_secret"

    def report_path(self, rank: int = 0, world: int = 1) -> Path:
        return self.root / ("generate_report.json" if world == 1 else f"generate_report.rank{rank}.json")

    @property
    def jobs(self) -> Path:
        """Logs of the jobs of ``generate --launcher local|slurm``."""
        return self.root / "jobs"

    def image(self, provenance_row: dict) -> Path:
        """The PNG a provenance row describes (its ``file`` is relative to this folder)."""
        return self.root / provenance_row["file"]

    # --- reading -----------------------------------------------------------------------------------
    def current_shards(self, config: str) -> list[str]:
        """Names of the shards that make up ``config`` as last generated (``layout.json``)."""
        path = self.layout_path(config)
        if not path.is_file():
            raise DataNotFoundError("no generated images for this config", self.config_dir(config),
                                    "run `cxrsynth generate` first")
        return [shard_name(k) for k in range(read_json(path)["shards"])]

    def provenance(self, config: str) -> list[dict]:
        """All provenance records of one config, in shard order (a shard not yet made contributes none)."""
        rows = []
        for name in self.current_shards(config):
            prov = self.shard_dir(config, name) / "provenance.jsonl"
            if prov.is_file():
                rows += read_jsonl(prov)
        return rows

    def shard_is_done(self, config: str, name: str, key: str | None = None) -> bool:
        """A shard counts as done only if its marker, provenance, private id mapping and every PNG checksum
        agree, and (when ``key`` is given) it was made from the same translator and records as asked for
        now. A shard whose private mapping was lost is redone: a release needs it to prove where each
        image came from."""
        shard_dir, marker = self.shard_dir(config, name), self.marker(config, name)
        if not marker.is_file() or not shard_dir.is_dir():
            return False
        try:
            done = read_json(marker)
            if key is not None and done.get("key") != key:
                return False
            prov = shard_dir / "provenance.jsonl"
            if sha256_file(prov) != done["provenance_sha256"]:
                return False
            lines = read_jsonl(prov)
            if len(lines) != done["count"]:
                return False
            if [m["id"] for m in read_jsonl(self.private_mapping(config, name))] != [p["id"] for p in lines]:
                return False
            return all((shard_dir / f"{p['id']}.png").is_file()
                       and sha256_file(shard_dir / f"{p['id']}.png") == p["png_sha256"] for p in lines)
        except (OSError, ValueError, KeyError, TypeError, DataNotFoundError):
            return False

    def collect(self, configs: tuple[str, ...]) -> tuple[dict[str, list[dict]], list[dict]]:
        """Public provenance per config and the private mapping, after checking every shard is finished.

        Raises :class:`DataNotFoundError` naming the first unfinished shard, or a config without images."""
        per_config, mapping = {}, []
        for config in configs:
            for name in self.current_shards(config):
                if not self.shard_is_done(config, name):
                    raise DataNotFoundError("generation is not finished (a shard is incomplete)",
                                            self.shard_dir(config, name),
                                            "rerun `cxrsynth generate`: it completes what is missing")
                mapping += read_jsonl(self.private_mapping(config, name))
                # read once here: every current shard is finished, so this is provenance(config)
                per_config.setdefault(config, []).extend(read_jsonl(self.shard_dir(config, name) / "provenance.jsonl"))
            if not per_config.get(config):
                raise DataNotFoundError(f"no generated images for {config}", self.config_dir(config))
        return per_config, mapping

    def fingerprint(self, configs: tuple[str, ...]) -> str:
        """What the finished shards of ``configs`` were made from: the sha256 of every current shard's
        key (translator file, records, output mapping). New translator files give a new fingerprint."""
        keys = []
        for config in configs:
            for name in self.current_shards(config):
                marker = self.marker(config, name)
                keys.append([config, name, read_json(marker).get("key") if marker.is_file() else None])
        return hashlib.sha256(json.dumps(keys).encode()).hexdigest()
