"""The emotion CNN as analysis reads it: class order, preprocessing, loading with a model card, batched predict.

Analysis runs the network on LiteRT from TFLite flatbuffers (``batchemo.runtime``) and never imports
TensorFlow; the Keras model runs on TensorFlow only where LiteRT is missing (or ``BATCHEMO_RUNTIME=keras``),
and for training and export. TensorFlow is imported lazily (inside functions) so that ``import batchemo``
and ``batchemo --help`` stay fast. The architectures and everything that trains them live in
``batchemo.training``, which this module never imports: a shipped file loads as plain Keras layers.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.records import CLASSES, INPUT_SIZE, ModelError  # noqa: F401 (ModelError: its public home)
from .tta import read as read_views
from .tta import way as tta_way

DEFAULT_MODEL_PATH = Path(__file__).parent / "models" / "default.keras"




def preprocess(faces: np.ndarray) -> np.ndarray:
    """uint8 grayscale faces (N, 48, 48) or (N, 48, 48, 1) -> float32 (N, 48, 48, 1) in [0, 1]."""
    x = np.asarray(faces)
    if x.ndim == 3:
        x = x[..., None]
    if x.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 1):
        raise ValueError(f"faces must be (N, {INPUT_SIZE}, {INPUT_SIZE}[, 1]), got {x.shape}")
    return x.astype(np.float32) / 255.0


@dataclass
class ModelCard:
    """What a model is and how well it does; saved as JSON beside the .keras file."""

    architecture: str
    classes: list[str] = field(default_factory=lambda: list(CLASSES))
    preprocessing: dict[str, Any] = field(
        default_factory=lambda: {"size": INPUT_SIZE, "color": "grayscale", "scale": "pixel / 255", "tta": "hflip"}
    )
    training_data: str = ""
    training_faces: int = 0
    validation_faces: int = 0
    recipe: dict[str, Any] = field(default_factory=dict)
    epochs: int = 0
    validation_accuracy: float | None = None
    per_class_f1: dict[str, float] = field(default_factory=dict)
    parameters: int = 0
    date: str = ""
    macro_f1: float | None = None  # on validation, with the card's TTA
    ece: float | None = None  # expected calibration error, 15 equal-width confidence bins, validation, TTA
    macs: int = 0  # multiply-adds of one forward pass of one face (a two-view TTA runs two)
    # the way of reading a face (batchemo.tta) the kept epoch was chosen by, on validation accuracy
    checkpoint_chosen_on: str = ""
    # [first, last]: the weights are the mean of those epochs' (training's weight averaging); []: one epoch's
    weights_averaged: list[int] = field(default_factory=list)
    teachers: list[dict[str, Any]] = field(default_factory=list)  # distillation: file name, validation accuracy
    # Both ways of reading a face, on validation: one pass, and the mean with its mirror image (flip TTA);
    # flip_agreement: the share of faces whose top class is the same on the face and on its mirror image.
    validation_accuracy_tta: dict[str, float] = field(default_factory=dict)  # {"none": .., "hflip": .., "rot5": ..}
    flip_agreement: float | None = None
    # the TFLite flatbuffers (batchemo.export): the .keras file's SHA-256 they were converted from, and per
    # kind (float32, int8) the file and the share of validation faces whose label is the Keras model's
    export: dict[str, Any] = field(default_factory=dict)
    # How probabilities are made to mean human agreement (batchemo.votes): {"temperature": T, "fitted_on": ...};
    # every read divides the log of the card's read by T. {}: the network's own probabilities.
    calibration: dict[str, Any] = field(default_factory=dict)
    # Figures against FER+'s ten votes per validation face (votes.VoteScores.as_dict), after calibration,
    # and FER2013's own labels' accuracy on the same split ("fer2013_accuracy"); {}: not measured.
    ferplus: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def path_for(model_path: str | os.PathLike) -> Path:
        p = Path(model_path)
        return p.with_name(p.stem + ".card.json")

    def save(self, model_path: str | os.PathLike) -> Path:
        from ..core.files import atomic_write_text

        path = self.path_for(model_path)
        atomic_write_text(path, json.dumps(self.__dict__, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, model_path: str | os.PathLike) -> "ModelCard | None":
        path = cls.path_for(model_path)
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ModelError(f"{path}: unreadable model card ({e})") from None
        problem = cls._problem(data)
        if problem:
            raise ModelError(f"{path}: unreadable model card: {problem}")
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    @classmethod
    def _problem(cls, data) -> str:
        """What makes a card's JSON unusable ("'preprocessing' is a number, expected an object"), or "".

        Each known field must have its default's JSON type (a float field takes any number or null); which
        classes the list names is checked where the model is loaded (the message names the model).
        """
        import dataclasses

        def kind(v) -> str:
            return {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}.get(
                type(v), "a number")

        if not isinstance(data, dict):
            return f"the file holds {kind(data)}, expected an object of fields"
        for f in dataclasses.fields(cls):
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if f.name not in data:
                if required:
                    return f"no {f.name!r} field"
                continue
            v = data[f.name]
            default = "" if required else f.default if f.default is not dataclasses.MISSING else f.default_factory()
            if default is None or isinstance(default, float):
                ok = v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
                want = "a number"
            else:
                ok = isinstance(v, type(default)) and not (isinstance(v, bool) and not isinstance(default, bool))
                ok = ok or (type(default) is int and isinstance(v, float) and v.is_integer())  # 3.0 epochs is 3
                want = "a whole number" if type(default) is int else kind(default)
            if not ok:
                return f"{f.name!r} is {kind(v)}, expected {want}"
        tta = data.get("preprocessing", {}).get("tta", "none")
        if not isinstance(tta, (str, bool)):
            return f"'preprocessing.tta' is {kind(tta)}, expected a way's name (hflip, rot5, turns or none)"
        return ""


class EmotionModel:
    """A loaded CNN with its card. ``predict`` takes uint8 48x48 faces and returns (N, 7) probabilities.

    Columns always come in CLASSES order: a model saved with another class order is permuted on the way out.
    Two runtimes compute the same function: ``forward`` (LiteRT on a float32 flatbuffer, ``runtime``
    "litert") or, without it, ``keras_model`` on TensorFlow ("keras"). ``int8``: the dynamic-range int8
    flatbuffer's forward pass in CLASSES order (``runtime.Reordered``), which only LIME uses, face by face,
    where it gives the shown label; None when the model has none (``fastpath`` may convert one).
    """

    def __init__(self, keras_model, card: ModelCard, path: Path | None = None, *,
                 forward=None, int8=None):
        self.keras_model = keras_model
        self.card = card
        self.path = path
        self.classes: tuple[str, ...] = CLASSES
        self._order = [list(card.classes).index(c) for c in CLASSES]
        self.tta = card.preprocessing.get("tta", "none")  # how a label reads a face: see tta.py
        self.temperature = float(card.calibration.get("temperature", 1.0))  # votes.temper, after the read
        self._fn = forward
        self.runtime = "keras" if forward is None else "litert"
        self.int8 = int8

    @property
    def tta(self) -> str:
        return self._tta

    @tta.setter
    def tta(self, value: bool | str) -> None:
        self._tta = tta_way(value)  # a way's name, whatever the caller sets (True/False: flip/one pass)

    def _forward(self, x: np.ndarray) -> np.ndarray:
        # Keras: a compiled tf.function beats model.predict for many small calls (LIME, video) by ~10x overhead.
        if self._fn is None:
            import tensorflow as tf

            model = self.keras_model
            fn = tf.function(lambda t: model(t, training=False), reduce_retracing=True, autograph=False)
            self._fn = lambda t: fn(t).numpy()
        return self._fn(x)

    def predict_scaled(self, x: np.ndarray, batch_size: int = 512, tta: bool | str | None = None) -> np.ndarray:
        """Probabilities for already-preprocessed input (N, 48, 48, 1) float32 in [0, 1].

        ``tta`` overrides the card's test-time augmentation for this call (None: as the card says; False: one
        pass; a way named in ``tta.WAYS``).
        """
        tta = tta_way(tta, self.tta)
        n = len(x)
        out = np.empty((n, len(self.classes)), np.float32)
        for i in range(0, n, batch_size):
            chunk = np.asarray(x[i : i + batch_size], dtype=np.float32)
            out[i : i + len(chunk)] = read_views(self._forward, chunk, tta)  # all views in one forward pass
        if self.temperature != 1.0:
            from ..sources.votes import temper

            out = temper(out, self.temperature)
        return out if self._order == list(range(len(CLASSES))) else out[:, self._order]

    def predict(self, faces: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """(N, 7) probabilities, columns in ``self.classes`` order, for uint8 grayscale 48x48 faces."""
        if len(faces) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        return self.predict_scaled(preprocess(faces), batch_size)

    @property
    def name(self) -> str:
        return self.path.name if self.path else self.card.architecture


def fold_batchnorm(km):
    """An inference copy of a linear-chain model with each BatchNorm folded into the conv before it.

    Same function (checked on random input by the caller), fewer ops: a batch-norm after a conv is an
    affine map per channel, so it can live in the conv's kernel and bias. Returns None when the model is
    not a plain chain of layers.
    """
    import keras

    layers = [layer for layer in km.layers if not isinstance(layer, keras.layers.InputLayer)]
    inp = keras.Input(km.input_shape[1:])
    x, prev, i = inp, km.inputs[0], 0
    while i < len(layers):
        layer = layers[i]
        if layer.input is not prev:  # not a chain: leave the model as it is
            return None
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        if isinstance(layer, keras.layers.Conv2D) and isinstance(nxt, keras.layers.BatchNormalization):
            kernel = layer.kernel.numpy()
            bias = layer.bias.numpy() if layer.use_bias else np.zeros(kernel.shape[-1], np.float32)
            gamma = nxt.gamma.numpy() if nxt.scale else 1.0
            beta = nxt.beta.numpy() if nxt.center else 0.0
            scale = gamma / np.sqrt(nxt.moving_variance.numpy() + nxt.epsilon)
            cfg = dict(layer.get_config(), use_bias=True, kernel_regularizer=None, name=layer.name + "_bnfolded")
            conv = keras.layers.Conv2D.from_config(cfg)
            x = conv(x)
            conv.set_weights([kernel * scale, (bias - nxt.moving_mean.numpy()) * scale + beta])
            prev, i = nxt.output, i + 2
        else:
            clone = layer.__class__.from_config(layer.get_config())
            x = clone(x)
            if layer.weights:
                clone.set_weights(layer.get_weights())
            prev, i = layer.output, i + 1
    return keras.Model(inp, x, name=km.name)


#: ``load_model``'s runtime when not given: "auto" (LiteRT where installed, else Keras), "litert" or "keras".
RUNTIME_ENV = "BATCHEMO_RUNTIME"
RUNTIMES = ("auto", "litert", "keras")


def model_card(path: str | os.PathLike | None = None, runtime: str | None = None) -> tuple[ModelCard, Path]:
    """The card of a model file and its path, the file checked but the network not loaded: what a run's
    parent needs before it keys its cache and starts workers (each interpreter costs memory). A ``.keras``
    file that will run on LiteRT without flatbuffers is converted here, once: the card, which records the
    conversion, is then final, and the workers do not each convert it."""
    path = Path(path) if path is not None else DEFAULT_MODEL_PATH
    _check_file(path)
    if _runtime(runtime) == "litert":
        return _flatbuffers(path)[1], path
    return ModelCard.load(path) or ModelCard(architecture=path.stem), path


def _runtime(runtime: str | None) -> str:
    """"litert" or "keras": the runtime a load will use (``load_model``'s ``runtime``), saying why once."""
    from ..core import runtime as rt

    runtime = runtime or os.environ.get(RUNTIME_ENV) or "auto"
    if runtime not in RUNTIMES:
        raise ModelError(f"runtime {runtime!r} (${RUNTIME_ENV}): choose one of {', '.join(RUNTIMES)}")
    if runtime == "keras" or rt.litert_available():
        return runtime if runtime == "keras" else "litert"
    if runtime == "litert":
        raise ModelError("the LiteRT runtime needs ai-edge-litert, which is not installed")
    rt.say("LiteRT (ai-edge-litert) is not installed here: the model runs on TensorFlow", "no-litert")
    return "keras"


def _check_file(path: Path) -> None:
    """A clear ModelError for a missing, misnamed, truncated or damaged ``.keras`` file."""
    if not path.exists():
        raise ModelError(f"{path}: model file not found")
    if path.suffix != ".keras":
        raise ModelError(f"{path}: not a .keras model file")
    import zipfile

    if not zipfile.is_zipfile(path):
        raise ModelError(f"{path}: not a .keras model (a .keras file is a zip archive; this one is damaged, "
                         f"truncated or another kind of file)")
    try:
        with zipfile.ZipFile(path) as z:
            broken = z.testzip()
    except (zipfile.BadZipFile, OSError) as e:
        raise ModelError(f"{path}: damaged .keras archive ({e})") from None
    if broken is not None:
        raise ModelError(f"{path}: damaged .keras archive ({broken} fails its checksum)")


def _check_card(path: Path, card: ModelCard, in_shape: tuple, n_out: int) -> None:
    """The network fits batchemo and its card: 48x48x1 in, one output per card class, the 7 emotions."""
    if in_shape != (INPUT_SIZE, INPUT_SIZE, 1):
        raise ModelError(f"{path}: incompatible input shape {in_shape}, batchemo needs (48, 48, 1)")
    if n_out != len(card.classes):
        raise ModelError(f"{path}: model has {n_out} outputs but its card lists {len(card.classes)} classes")
    if sorted(card.classes) != sorted(CLASSES):
        raise ModelError(f"{path}: classes {card.classes} are not the 7 FER2013 emotions {list(CLASSES)}")
    try:
        tta_way(card.preprocessing.get("tta", "none"))
    except ValueError as e:
        raise ModelError(f"{ModelCard.path_for(path)}: {e}") from None


def load_keras(path: str | os.PathLike | None = None) -> EmotionModel:
    """The ``.keras`` model on TensorFlow (BatchNorm folded for inference): training, export, and the
    fallback where LiteRT is missing."""
    path = Path(path) if path is not None else DEFAULT_MODEL_PATH
    _check_file(path)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from ..core.runtime import quiet

    try:
        with quiet():  # absl and oneDNN banners, printed from C++ on import
            import keras
    except ImportError:
        raise ModelError(f"{path}: running a .keras model without its TFLite flatbuffers needs TensorFlow: "
                         f"pip install 'batchemo[train]'") from None
    try:
        km = keras.saving.load_model(path, compile=False)
    except Exception as e:  # keras raises many types for a corrupt zip / config
        raise ModelError(f"{path}: cannot load model ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    card = ModelCard.load(path) or ModelCard(architecture=getattr(km, "name", "unknown"))
    _check_card(path, card, tuple(km.input_shape[1:]), km.output_shape[-1])
    return EmotionModel(_inference_copy(km), card, path)


def load_model(path: str | os.PathLike | None = None, runtime: str | None = None) -> EmotionModel:
    """Load a .keras model and its model card (the shipped default when ``path`` is None) for analysis.

    ``runtime``: "auto" (the default, or $BATCHEMO_RUNTIME): LiteRT on the model's TFLite flatbuffers
    where ``ai-edge-litert`` is installed (a ``.keras`` file without them is converted once and cached,
    one line says where), else the Keras model on TensorFlow (one line says so); "litert" or "keras" force one.
    """
    path = Path(path) if path is not None else DEFAULT_MODEL_PATH
    if _runtime(runtime) == "keras":
        return load_keras(path)
    _check_file(path)
    flatbuffers, card = _flatbuffers(path)
    return _litert_model(path, card, flatbuffers)


def _flatbuffers(path: Path) -> tuple[dict[str, Path], ModelCard]:
    """The flatbuffers of a checked ``.keras`` file (beside it or in the user cache; converted once, with
    one line saying where, when there are none) and its card."""
    from ..core import runtime as rt

    card = ModelCard.load(path)
    sha = rt.digest(path)
    found = rt.find_flatbuffers(path, card.export if card else None, sha)
    if found is None:
        paths, where = _convert_and_cache(path)
        rt.say(f"{path.name}: converted to TensorFlow Lite once, cached {where}")
        card = ModelCard.load(path)
        found = (paths, "")
    card = card or ModelCard.load(rt.cache_dir() / f"{sha[:32]}.keras") or ModelCard(architecture=path.stem)
    return found[0], card


def _convert_and_cache(path: Path) -> tuple[dict[str, Path], str]:
    """Convert a ``.keras`` file that came without flatbuffers, once: beside it (its card gets the export
    record) when its folder is writable, else in the user cache. Returns the paths and where, in words."""
    from ..core import runtime as rt
    from .tflite import convert

    keras = load_keras(path)
    fbs = {kind: convert(keras.keras_model, kind) for kind in rt.KINDS}
    sha = rt.digest(path)
    record = {"keras_sha256": sha, "converter": "tf.lite.TFLiteConverter (int8: dynamic range)"}
    card_path = ModelCard.path_for(path)
    if os.access(path.parent, os.W_OK) and (not card_path.exists() or os.access(card_path, os.W_OK)):
        try:
            paths = rt.write_flatbuffers(rt.beside(path), fbs)
            card = ModelCard.load(path) or keras.card
            card.export = dict(card.export or {}, **record)
            card.save(path)
            return paths, f"beside it, in {path.parent}"
        except OSError:
            pass  # a read-only mount that says otherwise: fall through to the user cache
    paths = rt.write_flatbuffers(rt.cached(sha), fbs)
    keras.card.export = record
    keras.card.save(rt.cache_dir() / f"{sha[:32]}.keras")  # a card for a model that came without one
    return paths, f"in {rt.cache_dir()}"


def _litert_model(path: Path, card: ModelCard, flatbuffers: dict[str, Path]) -> EmotionModel:
    from ..core.runtime import Reordered, TFLiteForward

    forward = TFLiteForward(flatbuffers["float32"].read_bytes(), kind="float32")
    _check_card(path, card, forward.input_shape, forward.outputs)
    order = [list(card.classes).index(c) for c in CLASSES]
    int8 = None
    if "int8" in flatbuffers:
        int8 = Reordered(TFLiteForward(flatbuffers["int8"].read_bytes(), kind="int8"), order)
    return EmotionModel(None, card, path, forward=forward, int8=int8)


def _inference_copy(km):
    """The BatchNorm-folded copy when it computes the same function (to 1e-4), else the model itself."""
    try:
        folded = fold_batchnorm(km)
    except Exception:  # an unusual layer config: not worth failing a load over
        return km
    if folded is None:
        return km
    x = np.random.default_rng(0).random((8, INPUT_SIZE, INPUT_SIZE, 1), dtype=np.float32)
    if not np.allclose(folded(x, training=False).numpy(), km(x, training=False).numpy(), atol=1e-4):
        return km
    return folded
