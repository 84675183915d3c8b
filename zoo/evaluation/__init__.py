"""Evaluation: a checkpoint measured on a split of its data or of other data, and the test split's scores a run keeps.

    report = evaluate_checkpoint("runs/lenet5_digits/<time>/checkpoints/best.pt")    # zoo evaluate
    scores = read_scores(run_dir)                                                    # test_scores.npz, or None

    evaluate.py  zoo evaluate: the checkpoint's config and data, the per-class table, the confusion matrix and
                 the trust figures, saved beside the checkpoint
    scores.py    test_scores.npz: the test split's logits on best.pt as the run ended, for zoo report
"""
