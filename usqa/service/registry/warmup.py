"""A promotion's proof that a version serves: its sessions are built and a warm-up frame is run before an
alias moves to it (`ModelRegistry.promote(..., verify=...)`), by the API and by `usqa models promote` alike.

Hashes prove that files are the ones published, not that they load: a version whose graph is garbage but
whose manifest matches it would otherwise become the champion that the next replica cannot serve.
"""

from __future__ import annotations

from usqa.service.inference.model import load_model
from usqa.service.inference.providers import ProviderPlan, plan_providers
from usqa.service.registry.store import ModelVersion, Verifier
from usqa.service.settings import Settings


def serving_check(settings: Settings, providers: ProviderPlan | None = None) -> Verifier:
    """Build `version`'s sessions as the service would and score one warm-up frame; raise if either fails."""
    plan = providers or plan_providers(settings.providers, settings.require_provider)

    def check(version: ModelVersion) -> None:
        load_model(
            version,
            target_rejection=settings.target_rejection,
            providers=plan,
            intra_op_threads=1,
            warmup_runs=1,
        )

    return check
