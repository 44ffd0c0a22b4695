"""`ecgaudit verify`: signature, schema, then each subject file present against its signed digest."""

from __future__ import annotations

from pathlib import Path

from ecgaudit.errors import ReportError
from ecgaudit.io import file_sha256
from ecgaudit.report import schema_errors
from ecgaudit.signing import VerificationError, load_public_key, verify_envelope


def verify_files(envelope: Path, public_key: Path, *, model: Path | None = None, report_dir: Path | None = None
                 ) -> list[str]:
    """Return what was verified, one line each; raise `VerificationError` at the first thing that does not hold."""
    key = load_public_key(public_key)
    try:
        envelope_bytes = envelope.read_bytes()
    except OSError as exc:
        raise ReportError(f"envelope {envelope} cannot be read ({exc.strerror}).") from exc
    verified = verify_envelope(envelope_bytes, key)
    lines = [f"signature: valid Ed25519 signature by key {verified.keyid[:16]}… over the in-toto statement"]
    errors = schema_errors(verified.report)
    if errors:
        raise VerificationError(f"the signed report does not follow the report schema ({errors[0]}).")
    lines.append("schema: the signed report follows the ecgaudit report schema")
    report_dir = report_dir or envelope.parent
    model_name = Path(verified.report["model"]["path"]).name
    if model is not None and model_name not in verified.subjects:
        raise VerificationError(f"the statement names no model subject '{model_name}'.")
    for name, digest in verified.subjects.items():
        path = model if (name == model_name and model is not None) else report_dir / name
        if not path.is_file():
            lines.append(f"{name}: not present, not checked")
            continue
        actual = file_sha256(path)
        if actual != digest:
            raise VerificationError(
                f"{path} does not match its signed digest (sha256 {actual[:16]}…, signed {digest[:16]}…): "
                "the file was changed after signing or is not the file that was audited."
            )
        lines.append(f"{name}: sha256 matches ({digest[:16]}…)")
    return lines
