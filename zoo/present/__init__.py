"""Presentation: every text the commands print, every picture zoo draws, the HTML report. Nothing here computes
a figure: it turns the records of the layers below into text, PNGs and HTML.

Its modules stand at two heights (the layers contract in pyproject.toml says which): the drawing modules sit near
the bottom, so that a run can draw for TensorBoard and `zoo evaluate` can save its figures; the renderers sit at
the top, above the records they render.

    console.py  writing to a console that may be gone (a closed pipe): say, silence             (bottom)
    figures.py  every picture that is not a grid: one PNG encoder, one font chooser, one matplotlib figure;
                the confusion matrix, ROC/PR/reliability, the wrong-prediction gallery, the lr-find curve,
                the report's training curves, a network input turned back into a picture       (bottom)
    grids.py    tile grids (filters, feature maps) and heat-map overlays                        (bottom)
    text.py     what the commands print: tables as text, Markdown, CSV or JSON, and each report   (top)
    report.py   `zoo report`: a run's self-contained HTML page                                   (top)
    compare.py  `zoo compare` and `zoo sweep`: their tables, JSON and the comparison's HTML page  (top)
"""
