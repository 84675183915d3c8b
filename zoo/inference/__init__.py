"""Using a trained network: open any source as a Predictor, predict files, export, explain; style transfer.

    predictor = zoo.load("runs/.../checkpoints/best.pt")      # or .onnx, .safetensors, torchvision:<Weights>
    report = predict_files(source, ["photos/"], top_k=3)      # zoo predict
    report = export_checkpoint(checkpoint, "onnx")            # zoo export, checked against eager PyTorch
    report = explain(checkpoint, ["cat.jpg"])                 # zoo explain: Grad-CAM, saliency, occlusion
    result = stylize("photo.jpg", "starry.jpg", "out.png")    # zoo stylize: the photo painted in the style

An autoencoder (task reconstruction) goes through the same four: zoo.load gives an AutoencoderPredictor
(reconstruct: N x C x H x W in [0, 1]; anomaly_scores: (N,) MSE; predict: an AnomalyScore per picture, its score
and verdict at the run's threshold), predict_files' rows are AnomalyScores, export writes the network with its
sigmoid (output: the reconstruction) or, with encoder=True, the encoder alone (output: the code), and explain draws
each picture's reconstruction error as a heat map (an ErrorMapReport). A text network (data.name text) opens as a
TextPredictor, which takes sentences (predict_texts: zoo predict --text), and exports with int64 token ids as input.

    load.py     zoo.load, Predictor, AutoencoderPredictor and TextPredictor; the openers of each source (checkpoint,
                safetensors, ONNX, pt2, torchvision weights), the Metadata an exported file carries, and what a
                Predictor runs of a network zoo built (runnable: an autoencoder's Reconstructor, its Encoder)
    predict.py  zoo predict: the top-k classes (an autoencoder's score and verdict) of image files, folders and glob
                patterns, batched; of sentences (--text, --text-file)
    export.py   zoo export: ONNX, torch.export (.pt2) and safetensors, each verified against eager PyTorch; an
                autoencoder's whole network or (--encoder) its encoder
    explain.py  zoo explain: heat maps (captum), the first convolution's filters, each stage's feature maps; an
                autoencoder's reconstruction error maps
    serve.py    zoo serve: FastAPI on uvicorn over a Predictor (POST /predict, /health, /model, a page at /),
                concurrent requests' pictures batched, uploads limited (the serve extra)
    stylize.py  zoo stylize: neural style transfer (Gatys et al. 2016), a picture optimised against VGG-19's
                responses to a content and a style picture; written atomically with its losses
"""
