"""Using a trained network: open any source as a Predictor, predict files, export, explain.

    predictor = zoo.load("runs/.../checkpoints/best.pt")      # or .onnx, .safetensors, torchvision:<Weights>
    report = predict_files(source, ["photos/"], top_k=3)      # zoo predict
    report = export_checkpoint(checkpoint, "onnx")            # zoo export, checked against eager PyTorch
    report = explain(checkpoint, ["cat.jpg"])                 # zoo explain: Grad-CAM, saliency, occlusion

    load.py     zoo.load and Predictor; the openers of each source (checkpoint, safetensors, ONNX, pt2,
                torchvision weights) and the Metadata an exported file carries
    predict.py  zoo predict: the top-k classes of image files, folders and glob patterns, batched
    export.py   zoo export: ONNX, torch.export (.pt2) and safetensors, each verified against eager PyTorch
    explain.py  zoo explain: heat maps (captum), the first convolution's filters, each stage's feature maps
"""
