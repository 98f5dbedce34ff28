"""Fire and smoke detection in camera and drone frames: training, inference and evaluation.

This package never imports ``service``, ``satellite`` or ``video``. Importing it (or ``detector.cli``) loads no
numpy, OpenCV, ONNX Runtime or torch; each module imports what it needs.

Public API, by module:

* ``detector.detections`` — :class:`Detector` (the one interface: ``info`` and ``detect(images, conf=)``),
  :class:`MotionDetector` (also ``detect_pair(image, previous)``), :class:`Detections` (one image's boxes as
  arrays, original-image pixels, model name and version), :class:`Detection`, :class:`ModelInfo`.
* ``detector.backends`` — :func:`load_detector` (``"auto" | "onnx" | "torch" | "rules"``, through the manifest;
  ``second_opinion=True`` adds the flame rule's),
  :class:`YoloDetector` (shared letterbox → network → NMS), :func:`onnx_network`, :func:`torch_network`.
* ``detector.yolo`` — :func:`letterbox`, :func:`letterbox_batch`, :func:`nms`, :func:`postprocess`,
  :func:`box_iou`: the pre/post-processing every network backend shares.
* ``detector.featureless`` — :func:`featureless_boxes`, :func:`box_structure`: large boxes over content with
  no structure (a grey or blue screen, an even sky, dense fog), which every network backend leaves out (pure).
* ``detector.images`` — :func:`load_image` (safe decoding; :class:`ImageLoadError` per bad file).
* ``detector.rules`` — :class:`RulesDetector`: weights-free flame colour and smoke motion rules.
* ``detector.second_opinion`` — :class:`SecondOpinion`: a model whose fire boxes the flame rule re-weighs
  (``load_detector(second_opinion=True)``), :func:`flame_support`, :func:`reweigh` (pure).
* ``detector.sequence`` — :class:`SequenceVerifier`, :class:`PositionVerifiers`, :class:`SequenceConfig`,
  :class:`IgnoreMask`, :class:`Event`: persistence rules for fixed cameras (pure).
* ``detector.tiling`` — :class:`TiledDetector` (whole frame plus overlapping tiles, merged; ``auto`` picks the grid
  by frame size with :func:`auto_grid`), :func:`tile_boxes`.
* ``detector.watch`` — :func:`watch`: a video or frame folder through a detector and the verifier.
* ``detector.clips`` — :func:`evaluate_clips`, :func:`score_events`, :func:`read_clip_list`: sequence-level
  evaluation of tower clips (false events before ignition or without fire, minutes to detection).
* ``detector.evaluate`` — :func:`evaluate`, :func:`compute_report`, :func:`average_precision`,
  :func:`match_detections`, :class:`EvalReport`: our own metrics.
* ``detector.manifest`` — :func:`load_manifest`, :func:`verified_file`, :class:`ModelEntry`, :class:`ModelError`.
* ``detector.export`` — :func:`export_model`: checkpoint → ONNX + torch weights, evaluation, manifest, card.
* ``detector.dataset`` / ``detector.train`` — building the training set and training (ultralytics, offline);
  ``detector/arch/`` holds our own architecture yamls (``yolov8n-relu.yaml``, the committed model's).
"""
