"""Per-layer shapes, parameters and MACs, with the totals and memory estimates a course table gives.

    summary = summarize("resnet18")                               # a registered model, built on the meta device
    summary = summarize_model(model, (3, 32, 32), depth=3)        # any module: not changed, its weights never read
    print(zoo.present.text.render_summary(summary, "markdown"))     # the text is the presentation layer's
    rows = catalog("resnet*")                                     # what `zoo list` prints

Parameters count once each, by the first module that registers them; shapes and MACs (1 multiply-add = 1 MAC,
convolutions and linear maps only) come from one forward pass at batch 1 on zeros. The rows add up to the
totals at every depth: a parent shown expanded gets an "(own)" row for what it holds or computes itself.
An autoencoder's summary also gives its code's shape (Summary.code_shape), as its encoder's output.

    results.py  Summary, Layer, Totals, ReferenceCheck: the frozen records, in the order JSON prints them
    build.py    summarize (a registered model) and summarize_model (any module): arguments, trace, fold
    tree.py     the module tree: parameter ownership, one row per module at a depth, totals and the memory estimate
    tracing.py  the forward pass: calls, shapes, MACs and new activation memory per module
    catalog.py  `zoo list`'s rows: registry facts and parameter counts from a meta-device build
"""

from zoo.summary.build import summarize, summarize_model
from zoo.summary.catalog import CatalogRow, catalog, count_parameters
from zoo.summary.results import Layer, ReferenceCheck, Summary, Totals

__all__ = ["CatalogRow", "Layer", "ReferenceCheck", "Summary", "Totals", "catalog", "count_parameters",
           "summarize", "summarize_model"]
