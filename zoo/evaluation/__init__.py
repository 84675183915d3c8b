"""Evaluation: a checkpoint measured on a split of its data or of other data, and the test split's scores a run keeps.

    report = evaluate_checkpoint("runs/lenet5_digits/<time>/checkpoints/best.pt")    # zoo evaluate
    scores = read_scores(run_dir)                                                    # test_scores.npz, or None

    evaluate.py  zoo evaluate: the checkpoint's config and data, the per-class table, the confusion matrix and
                 the trust figures, saved beside the checkpoint
    reconstruction.py  zoo evaluate of an autoencoder: MSE and PSNR beside PCA's of its code size, and with
                 abnormal pictures (--abnormal, --abnormal-classes) the anomaly ROC AUC, average precision, threshold
    source.py    the checkpoint's config with the caller's overrides, the test split it may not redraw, its network
    scores.py    test_scores.npz: the test split's logits on best.pt as the run ended, for zoo report
"""
