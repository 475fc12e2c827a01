"""A CRM export of accounts, read: CSV with a header row, or JSON lines.

Pure: `leadflow accounts import` reads the file and hands the text here. Column names are
matched loosely, as CRMs spell them ("Account Name", "Website", "Account Owner",
"Employees", "Billing Country", "Account ID"); every bad row is reported by its line, and
nothing is imported while any row is bad.
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.traits import employees

IMPORT_NAMESPACE = uuid.UUID("2b1f8a9c-4d3e-4f60-8e7a-acc0000a1111")
COLUMNS = {  # how exports name our fields -> ours
    "name": "name",
    "account_name": "name",
    "company": "name",
    "company_name": "name",
    "domains": "domains",
    "domain": "domains",
    "website": "website",
    "url": "website",
    "owner": "owner",
    "account_owner": "owner",
    "owner_email": "owner",
    "tier": "tier",
    "account_tier": "tier",
    "industry": "industry",
    "size": "size",
    "employees": "size",
    "number_of_employees": "size",
    "company_size": "size",
    "country": "country",
    "billing_country": "country",
    "external_id": "external_id",
    "id": "external_id",
    "account_id": "external_id",
    "crm_id": "external_id",
}


Text = Annotated[str, Field(min_length=1, max_length=200)]


class AccountRecord(BaseModel):
    """One account as a CRM knows it (also the body of `PUT /v1/accounts/{id}`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: Text
    domains: list[Annotated[str, Field(min_length=1, max_length=253)]] = Field(
        default_factory=list,
        max_length=50,
        description="Domains or URLs; the registrable domain of each is kept.",
    )
    website: Annotated[str, Field(min_length=1, max_length=253)] | None = None
    owner: Text | None = Field(
        default=None, description="The rep who owns the account (handoff routes to them)."
    )
    tier: Text | None = None
    industry: Text | None = None
    size: Annotated[int, Field(ge=0, le=10_000_000)] | None = Field(default=None, description="Employees.")
    country: Annotated[str, Field(pattern="^[A-Za-z]{2}$")] | None = None
    external_id: Text | None = Field(default=None, description="The CRM's id: imports are idempotent by it.")

    @field_validator("country")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return value.upper() if value else None

    def account_id(self) -> str:
        """A new account's id: the same for the same external id (or name) on every import."""
        return f"acct-{uuid.uuid5(IMPORT_NAMESPACE, self.external_id or self.name.casefold())}"

    def registrable_domains(self, registrable: Callable[[str], str | None]) -> list[str]:
        found = [registrable(d) for d in (*self.domains, *([self.website] if self.website else []))]
        return sorted({d for d in found if d})


class ImportProblem(ValueError):
    """Rows that cannot be imported: str() names each by its line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def parse_export(text: str, *, json_lines: bool) -> list[AccountRecord]:
    """Every row of the export, or ImportProblem naming each bad one."""
    records, problems = [], []
    for line, raw in _json_lines(text) if json_lines else _csv_rows(text):
        try:
            records.append(AccountRecord.model_validate(_our_names(raw)))
        except ValidationError as e:
            problems += [
                f"line {line}: {'.'.join(map(str, err['loc'])) or 'row'}: {err['msg']}" for err in e.errors()
            ]
        except ValueError as e:
            problems.append(f"line {line}: {e}")
    if problems:
        raise ImportProblem(problems)
    return records


def _our_names(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ValueError("a row must be an object of fields")
    mapped: dict[str, Any] = {}
    for key, value in raw.items():
        name = COLUMNS.get(re.sub(r"[\s\-]+", "_", str(key).strip().lower()))
        if name is None:
            continue  # CRM exports carry many columns we do not use
        value = _cell(name, value)
        if value is not None:
            mapped[name] = value
    return mapped


def _cell(name: str, value: Any) -> Any:
    """An export's cell as the record takes it: blanks are absent, "1,200" employees is 1200,
    "a.com; b.com" is two domains."""
    if isinstance(value, str):
        value = value.strip()
        if not value:
            return None
        if name == "domains":
            return [d for d in re.split(r"[\s,;|]+", value) if d]
        if name == "size":
            found = employees(value.replace(",", ""))
            if found is None:
                raise ValueError("size: must be a whole number of employees, e.g. 250")
            return found
    return value


def _csv_rows(text: str) -> Iterator[tuple[int, Any]]:
    reader = csv.DictReader(io.StringIO(text))
    for row in reader:
        yield reader.line_num, row


def _json_lines(text: str) -> Iterator[tuple[int, Any]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as e:
                raise ImportProblem([f"line {number}: not JSON ({e.msg})"]) from None
