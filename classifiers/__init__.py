"""replyguard classifiers: spam, abuse and intent models as verified scikit-learn artifacts."""

from classifiers.persistence import LoadedModel, Manifest, load_artifact, save_artifact
from classifiers.registry import ModelRegistry

__all__ = ["LoadedModel", "Manifest", "ModelRegistry", "load_artifact", "save_artifact"]
