"""Experiments: a config swept over its keys and seeds (zoo sweep), and finished runs compared (zoo compare).

    sweep.py       zoo sweep: the Optuna study, its workers, each trial an ordinary run; results.csv, best.yaml
    compare.py     zoo compare: runs read, grouped over seeds, paired tests (McNemar, over seeds), flipped images
    results.py     a sweep's rows (results.csv), its configurations grouped over seeds, the best one
    space.py       what a sweep varies: --param and the config's sweep section, every point checked first

Their layers differ (pyproject.toml): sweep.py at the top, under the CLI (it writes the comparison page);
compare.py above zoo.present.report (whose run reading it shares); results.py and space.py low, for the renderers.
"""
