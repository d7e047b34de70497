"""A brand's whole configuration: policy, templates and models, checked together.

:func:`load_brands` is what the worker runs at start-up. It loads every policy
and its template file, loads the models the policy names, and cross-checks them
(every routed intent and every intent threshold is a label of the intent model,
the out-of-scope label exists, every template the policy can send exists and
uses only known variables). Any problem raises
:class:`~worker.exceptions.PolicyError` / :class:`~worker.exceptions.TemplateError`
/ :class:`~worker.exceptions.ArtifactError` naming the file, and the worker does
not start.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from classifiers.persistence import LoadedModel
from classifiers.registry import ModelRegistry
from worker.exceptions import ArtifactError, PolicyError, Problem, TemplateError
from worker.policy import LoadedPolicy, load_policies, load_policy
from worker.settings import Settings
from worker.system_prompts import SystemPrompt, load_system_prompt
from worker.templates import TemplateBook, load_templates

log = logging.getLogger(__name__)


@dataclass
class Brand:
    loaded: LoadedPolicy
    templates: TemplateBook
    spam: LoadedModel
    abuse: LoadedModel
    intent: LoadedModel
    system_prompts: dict[str, SystemPrompt] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.loaded.brand

    @property
    def policy(self):  # -> Policy
        return self.loaded.policy

    @property
    def policy_version(self) -> str:
        return self.loaded.version

    def model_versions(self) -> dict[str, str]:
        return {"spam": self.spam.ref, "abuse": self.abuse.ref, "intent": self.intent.ref}


def _model_problems(loaded: LoadedPolicy, intent: LoadedModel) -> list[Problem]:
    policy = loaded.policy
    labels = set(intent.labels)
    problems = []
    oos = policy.intents.out_of_scope_label
    if oos not in labels:
        problems.append(
            Problem(
                "intents.out_of_scope_label", f"{oos!r} is not a label of model {intent.ref} (labels: {sorted(labels)})"
            )
        )
    routed = set(policy.intents.routes)
    for override in policy.overrides:
        routed |= set(override.routes or {})
    for label in sorted(routed - labels):
        problems.append(Problem(f"intents.routes.{label}", f"is not a label of model {intent.ref}"))
    thresholds = [policy.thresholds] + [o.thresholds for o in policy.overrides if o.thresholds]
    for table in thresholds:
        for label in sorted(set(table.intent) - labels - {"default"}):
            problems.append(Problem(f"thresholds.intent.{label}", f"is not a label of model {intent.ref}"))
    return problems


def load_brand(loaded: LoadedPolicy, settings: Settings, registry: ModelRegistry) -> Brand:
    template_path = settings.templates_dir / f"{loaded.brand}.yaml"
    if not template_path.exists():
        raise TemplateError(
            str(template_path), Problem("(file)", f"missing: brand {loaded.brand!r} has no template file")
        )
    templates = load_templates(template_path)
    problems = templates.check_policy(loaded.policy)
    if problems:
        raise TemplateError(str(template_path), problems)
    models = loaded.policy.models
    try:
        spam = registry.get(models.spam, task="spam")
        abuse = registry.get(models.abuse, task="abuse")
        intent = registry.get(models.intent, task="intent")
    except ArtifactError as exc:
        raise PolicyError(str(loaded.path), Problem("models", str(exc))) from exc
    for model, needed in ((spam, {"spam"}), (abuse, {"hate", "offensive"})):
        if not needed <= set(model.labels):
            raise PolicyError(
                str(loaded.path), Problem("models", f"{model.ref} lacks labels {sorted(needed - set(model.labels))}")
            )
    problems = _model_problems(loaded, intent)
    if problems:
        raise PolicyError(str(loaded.path), problems)
    if loaded.policy.llm:
        # import the LLM machinery (openai: ~1 s) and load the drafts' language identifier (~2 s)
        # now, before RQ forks a work-horse per job, instead of in every job
        import worker.llm_jobs  # noqa: F401
        from worker.llm import openai_package

        openai_package()  # imported lazily (worker.llm): here, so that the worker processes share it
        from worker.language import identifier

        identifier()
        for term_list in loaded.policy.guardrails.lists():
            term_list.patterns  # noqa: B018 - compile the term patterns once, in the parent
    return Brand(
        loaded=loaded,
        templates=templates,
        spam=spam,
        abuse=abuse,
        intent=intent,
        system_prompts=_system_prompts(loaded, settings),
    )


def _system_prompts(loaded: LoadedPolicy, settings: Settings) -> dict[str, SystemPrompt]:
    """Load every system prompt the policy's LLM settings name; warn about unset API keys."""
    llm = loaded.policy.llm
    if llm is None:
        return {}
    wanted: dict[str, str] = {}
    if llm.personalise:
        wanted[llm.personalise.defaults.system_prompt or "personalise"] = "personalise"
        for settings_ in llm.personalise.intents.values():
            if settings_.system_prompt:
                wanted[settings_.system_prompt] = "personalise"
    if llm.cascade:
        wanted[llm.cascade.system_prompt] = "classify"
    prompts = {pid: load_system_prompt(settings.system_prompts_dir, pid, purpose) for pid, purpose in wanted.items()}
    for name, provider in llm.providers.items():
        if provider.api_key_env and not os.environ.get(provider.api_key_env):
            log.warning(
                "brand %s: LLM provider %r reads its API key from %s, which is not set; "
                "its replies will use plain templates (reason missing_api_key)",
                loaded.brand,
                name,
                provider.api_key_env,
            )
    return prompts


def load_brands(settings: Settings, registry: ModelRegistry | None = None) -> dict[str, Brand]:
    """Load and cross-check every brand under the policies directory."""
    registry = registry or ModelRegistry(settings.models_dirs)
    return {
        brand: load_brand(loaded, settings, registry) for brand, loaded in load_policies(settings.policies_dir).items()
    }


def load_one(
    path: Path, settings: Settings, registry: ModelRegistry | None = None, *, name_must_match: bool = True
) -> Brand:
    """Load a single policy file and its templates/models (used by ``replyguard validate``)."""
    return load_brand(
        load_policy(path, name_must_match=name_must_match), settings, registry or ModelRegistry(settings.models_dirs)
    )
