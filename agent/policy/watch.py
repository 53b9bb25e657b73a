"""Policies reloaded when their files change; a bad edit keeps the last good set and says so."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agent.policy.loader import PolicyError, PolicyLoadError, PolicySet, load_policies, policy_files

if TYPE_CHECKING:
    from pathlib import Path


@dataclass(frozen=True, slots=True)
class Reload:
    """What a refresh found: a new set, a rejected edit, or nothing new."""

    changed: bool
    error: PolicyLoadError | None = None


@dataclass
class PolicySource:
    """The policies at a path, re-read only when a file was added, removed or modified."""

    path: Path
    current: PolicySet | None = None
    _signature: tuple[tuple[str, int, int], ...] = field(default=())

    def _fingerprint(self) -> tuple[tuple[str, int, int], ...]:
        files = policy_files(self.path) if self.path.exists() else []
        signature = []
        for file in files:
            try:
                stat = file.stat()
            except OSError:
                continue
            signature.append((str(file), stat.st_mtime_ns, stat.st_size))
        return tuple(signature)

    def refresh(self) -> Reload:
        """Reload if the files changed. The first load raises PolicyLoadError; later bad edits do not.

        A folder that cannot be read (out of file descriptors, a volume being remounted) is a rejected
        reload like a bad edit: the last good set stays, and the next pass tries again.
        """
        try:
            signature = self._fingerprint()
            if self.current is not None and signature == self._signature:
                return Reload(changed=False)
            loaded = load_policies(self.path)
        except PolicyLoadError as error:
            if self.current is None:
                raise
            self._signature = signature
            return Reload(changed=False, error=error)
        except OSError as error:
            problem = PolicyError(str(self.path), 1, 1, "<folder>", "", f"cannot be read: {error}")
            unreadable = PolicyLoadError([problem])
            if self.current is None:
                raise unreadable from None
            return Reload(changed=False, error=unreadable)
        self._signature = signature
        self.current = loaded
        return Reload(changed=True)

    def policies(self) -> PolicySet:
        if self.current is None:
            self.refresh()
        assert self.current is not None  # noqa: S101 - refresh() either set it or raised
        return self.current
