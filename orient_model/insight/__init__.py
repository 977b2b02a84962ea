"""Insight into a model as a whole: how it behaves on labelled photos, where it fails, what it
looks at, what its hidden units respond to (the seed lecture's templates, units and saliency);
and the page that lets a person check a promotion.

``build_report`` writes one model's page; ``comparison_page`` champion's and challenger's.
"""

from orient_model.insight.photos import LabelledPhoto, NoPhotos, card_photos, folder_photos, photos_for
from orient_model.insight.report import Caps, build_report

__all__ = ["Caps", "LabelledPhoto", "NoPhotos", "build_report", "card_photos", "folder_photos", "photos_for"]
