"""A small statistical model of agents' corrections, weighed beside the rules.

The rules in `rules/` stay the classifier; this adds what the desk's own agents
taught it. `mailproc classify learn` (or the nightly slot, `[learn] nightly`)
trains, for each of type and priority, a logistic regression over the words and
word stems of what the classifier read (subject and the sender's own
words; addresses and links left out) plus a few facets of the customer (plan,
high value, partner, internal; and the decided type, for priority). It learns from two kinds of example:

- every case an agent corrected: the value the agents settled on (the newest
  correction of the case), weighted CORRECTION_WEIGHT;
- cases resolved without a correction of that field: the rules' value stood, so
  it was right. Without them a model would only ever have seen the rules' mistakes
  and would pull every mail towards the corrected types.

Training needs scikit-learn (the optional extra `mailproc[learn]`); a model is
kept as plain JSON in the `learned_model` table (intercepts and per-term weights),
so classifying reads it with a few dict lookups and needs no library. A field
gets no model until it has `[learn] min_corrections` corrections (50). Until then
(`[learn] starter`), the starter model shipped in mailproc/defaults weighs in: the
same kind of model, trained on the labelled set's development part by
scripts/train-starter-model.

How a model weighs in (mailproc.stages.classify): for type, its best class adds
evidence `model` of `[learn] weight` x probability beside the rules' evidence, so
rules and model are summed and explained the same way — when it is MIN_PROBABILITY
sure, or MIN_PROBABILITY_ALONE where no rule found anything, and only on a mail with
MIN_KNOWN features it knows. For priority, the rules' first match stands unless the
model is `[learn] priority_probability` sure of another level (DIRECTORY_ONLY_PROBABILITY
against a rule that only read the directory).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import Counter
from dataclasses import dataclass, replace
from functools import cached_property
from operator import mul
from datetime import datetime, timedelta
from typing import Any

import peewee as pw

from mailproc import db
from mailproc.models import Case, Correction, Customer, LearnedModel, utc
from mailproc.rules.matching import body_text, normalise

FIELDS = ("type", "priority")
CORRECTION_WEIGHT = 3.0  # a corrected case teaches more than one where the rules were right
CONFIRMED_LIMIT = 3000  # newest resolved, uncorrected cases used per field
CONFIRMED_DAYS = 365
KEEP = 3  # models kept per field (the newest is used; older ones for comparison)
STEM = 5
# How sure the type model must be for its evidence to count: beside rules' evidence, 60 %
# (a weak guess must not outvote a rule); where no rule found anything, 35 % (the model's
# best guess beats the default type; below it, the mail goes to triage as before).
MIN_PROBABILITY = 0.6
MIN_PROBABILITY_ALONE = 0.35
# The priority model overrides a rule that read a facet in the text when it is [learn]
# priority_probability sure; a rule that only read the directory (the per-customer default)
# when it is this sure: there the rules found nothing in the text to go by.
DIRECTORY_ONLY_PROBABILITY = 0.6
MIN_KNOWN = 10  # ... and only for a mail with this many features it knows: "Help / hello" is triage
MIN_DF = 2  # a term seen in one example only is more likely noise than a sign
C = 10.0  # inverse regularisation: words are many and examples few, so fit them closely

log = logging.getLogger("mailproc.learned")

_WORD = re.compile(r"[^\W\d_]{2,}")
# Addresses and links name people and hosts, not what is asked: left out of the features.
# Bounded, so that a long run of non-spaces costs linear time, not quadratic.
_NOISE = re.compile(r"[^\s@]{1,64}@[^\s@]{1,255}|\b(?:https?://|www\.)\S{1,2048}")


class LearnError(Exception):
    """Why no model could be trained (too few corrections, too little text, no scikit-learn);
    `missing_library` tells the last apart (an installation problem, exit 1)."""

    def __init__(self, message: str, missing_library: bool = False):
        super().__init__(message)
        self.missing_library = missing_library


# --- features: the same function at training and at classification -------------------------------

def features(subject: str, body: str, facets: tuple[str, ...] = ()) -> list[str]:
    """Words and word stems of the normalised subject and body, and the facets (word pairs
    were tried: no better on new mail, twice the terms and time). Subject words are also
    marked as such ("cancel" in a subject says more); a stem (the first STEM letters of a
    longer word) lets "cancelar", "cancelamento" and "cancellation" teach each other, and
    survives typos at the end of a word."""
    words = _WORD.findall(_NOISE.sub(" ", body))
    title = _WORD.findall(_NOISE.sub(" ", subject))
    found = [f"s:{w}" for w in title] + title + words
    found += [f"~{w[:STEM]}" for w in title + words if len(w) > STEM]
    return found + facet_terms(facets)


def facet_terms(facets: tuple[str, ...]) -> list[str]:
    """The facets as features: `features(s, b, f) == features(s, b) + facet_terms(f)`, so one
    mail's words serve both models."""
    return [f"={f}" for f in facets]


def facets(customer: Customer | None, field: str, case_type: str | None = None) -> tuple[str, ...]:
    """What the directory says of the sender (and, for priority, the decided type)."""
    found: list[str] = []
    if customer is None:
        found.append("unknown")
    else:
        found.append(f"plan:{customer.plan or 'none'}")
        found += [name for name in ("high_value", "partner", "internal") if getattr(customer, name, False)]
    if field == "priority" and case_type:
        found.append(f"type:{case_type}")
    return tuple(found)


def split_text(text: str) -> tuple[str, str]:
    """A correction's kept text ("subject\\n\\ndescription") as the rules read it."""
    subject, _, body = text.partition("\n\n")
    return normalise(subject), body_text(body)


# --- the stored model -------------------------------------------------------------------------

@dataclass(frozen=True)
class Model:
    """A trained model as columns: its terms, their idf, and per class an intercept and one
    weight per term. Kept as plain JSON in this shape, it loads in a few milliseconds and
    scores a mail with a few C-level sums."""
    field: str
    classes: tuple[str, ...]
    intercepts: tuple[float, ...]
    terms: list[str]
    idf: list[float]
    weights: list[list[float]]  # one list per class, in the order of `terms`
    trained_at: datetime
    examples: int
    corrections: int
    accuracy: float | None
    id: int | None = None
    source: str = ""  # how `classify` names it: "learnt from N corrections", "starter model"

    def __post_init__(self) -> None:
        if not self.source:
            object.__setattr__(self, "source", f"learnt from {self.corrections} corrections")

    @cached_property
    def index(self) -> dict[str, int]:
        return {term: i for i, term in enumerate(self.terms)}

    def probabilities(self, found: list[str]) -> dict[str, float]:
        """The class probabilities of a feature list: TF-IDF (sublinear tf, l2-normed over the
        model's own terms, as scikit-learn's TfidfVectorizer) through the softmax of the
        linear scores. Written for speed: it runs for every new mail."""
        index, idf = self.index, self.idf
        ids: list[int] = []
        values: list[float] = []
        log = math.log
        for term, n in Counter(found).items():
            i = index.get(term)
            if i is not None:
                ids.append(i)
                values.append(idf[i] if n == 1 else (1.0 + log(n)) * idf[i])
        norm = math.sqrt(sum(map(mul, values, values))) or 1.0
        scores = [b + sum(map(mul, map(column.__getitem__, ids), values)) / norm
                  for b, column in zip(self.intercepts, self.weights)]
        top = max(scores)
        exps = [math.exp(s - top) for s in scores]
        total = sum(exps)
        return {c: e / total for c, e in zip(self.classes, exps)}

    def known(self, found: list[str]) -> int:
        """How many different features of a mail the model has weights for."""
        index = self.index
        return sum(1 for term in set(found) if term in index)

    def predict(self, found: list[str]) -> tuple[str, float]:
        probabilities = self.probabilities(found)
        best = max(probabilities, key=lambda c: probabilities[c])
        return best, probabilities[best]

    def data(self) -> dict[str, Any]:
        return {"classes": list(self.classes), "intercepts": list(self.intercepts), "terms": list(self.terms),
                "idf": list(self.idf), "weights": [list(w) for w in self.weights]}

    def to_json(self) -> str:
        return json.dumps(self.data(), separators=(",", ":"))

    @staticmethod
    def from_data(data: dict[str, Any], **fields: Any) -> Model:
        return Model(classes=tuple(data["classes"]), intercepts=tuple(data["intercepts"]), terms=data["terms"],
                     idf=data["idf"], weights=data["weights"], **fields)

    @staticmethod
    def from_row(row: LearnedModel) -> Model:
        return Model.from_data(json.loads(row.data), field=row.field, trained_at=row.trained_at,
                               examples=row.examples, corrections=row.corrections, accuracy=row.accuracy,
                               id=row.id)


# --- examples -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Example:
    features: list[str]
    label: str
    weight: float
    corrected: bool


def examples(field: str, now: datetime) -> list[Example]:
    """The corrected cases (their settled value) and the confirmed ones, newest first."""
    if field not in FIELDS:
        raise ValueError(f"models are learnt for {', '.join(FIELDS)}, not {field!r}")
    settled: dict[int, Correction] = {}
    for c in Correction.select().where(Correction.field == field).order_by(Correction.at.desc(),
                                                                           Correction.id.desc()):
        settled.setdefault(c.case_id, c)
    cases = {c.id: c for c in _with_customer().where(Case.id.in_(list(settled)))} if settled else {}
    found: list[Example] = []
    for case_id, c in settled.items():
        case = cases.get(case_id)
        subject, body = split_text(c.text)
        customer = case.customer if case is not None else None
        case_type = (case.type if case is not None else None) if field == "priority" else None
        found.append(Example(features(subject, body, facets(customer, field, case_type)), c.new,
                             CORRECTION_WEIGHT, True))
    since = utc(now) - timedelta(days=CONFIRMED_DAYS)
    confirmed = (_with_customer().where(Case.resolved_at.is_null(False), Case.created_at >= since)
                 .order_by(Case.created_at.desc()).limit(CONFIRMED_LIMIT + len(settled)))
    for case in confirmed:
        if case.id in settled or len(found) - len(settled) >= CONFIRMED_LIMIT:
            continue
        subject, body = normalise(case.summary or ""), body_text(case.description or "")
        label = case.type if field == "type" else case.priority
        found.append(Example(features(subject, body, facets(case.customer, field, case.type)), label, 1.0, False))
    return found


def _with_customer():
    """Cases with their directory row in the same query (facets read it for every example)."""
    return Case.select(Case, Customer).join(Customer, pw.JOIN.LEFT_OUTER, on=(Case.customer == Customer.id))


# --- training -------------------------------------------------------------------------------

def _identity(found: list[str]) -> list[str]:
    return found


def fit(field: str, data: list[Example], now: datetime) -> Model:
    """Train on `data` and say how well it does on corrections it was not trained on."""
    return replace(train(field, data, now), accuracy=cross_validated(field, data, now))


def pipeline(data: list[Example]):
    """The fitted scikit-learn vectorizer and classifier (what `train` exports). The features
    are made by `features` above, so the vectorizer only counts and weighs them."""
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
    except ImportError as e:
        raise LearnError("training a model needs scikit-learn: pip install 'mailproc[learn]'",
                         missing_library=True) from e
    vectorizer = TfidfVectorizer(analyzer=_identity, sublinear_tf=True, lowercase=False, min_df=MIN_DF)
    classifier = LogisticRegression(C=C, max_iter=2000)
    try:
        matrix = vectorizer.fit_transform([e.features for e in data])
        classifier.fit(matrix, [e.label for e in data], sample_weight=[e.weight for e in data])
    except ValueError as e:  # e.g. "no terms remain": too little text to learn from
        raise LearnError(f"could not train: {e}") from e
    return vectorizer, classifier


def train(field: str, data: list[Example], now: datetime) -> Model:
    """Train, and export the model to terms and weights (every term is kept: the l2 norm of
    a mail's vector counts them all)."""
    labels = {e.label for e in data}
    if len(labels) < 2:
        raise LearnError(f"every {field} example has the same value ({labels.pop() if labels else 'none'}): "
                         "nothing to tell apart")
    vectorizer, classifier = pipeline(data)
    coef = [[float(x) for x in row] for row in classifier.coef_]
    intercepts = [float(i) for i in classifier.intercept_]
    if len(classifier.classes_) == 2:  # one score s for the second class: softmax([-s/2, s/2]) is its sigmoid
        coef = [[-x / 2 for x in coef[0]], [x / 2 for x in coef[0]]]
        intercepts = [-intercepts[0] / 2, intercepts[0] / 2]
    order = sorted(vectorizer.vocabulary_.items(), key=lambda kv: kv[1])  # term, column
    columns = [column for _, column in order]
    return Model(field=field, classes=tuple(str(c) for c in classifier.classes_), intercepts=tuple(intercepts),
                 terms=[str(term) for term, _ in order], idf=[float(vectorizer.idf_[c]) for c in columns],
                 weights=[[row[c] for c in columns] for row in coef], trained_at=utc(now), examples=len(data),
                 corrections=sum(e.corrected for e in data), accuracy=None)


def cross_validated(field: str, data: list[Example], now: datetime, folds: int = 5) -> float | None:
    """Accuracy on the corrected cases, each predicted by a model trained without it (k-fold):
    how often the model would have given the agents' value where the rules did not. None
    when some corrected value has fewer than two examples."""
    corrected = [i for i, e in enumerate(data) if e.corrected]
    per_class = Counter(data[i].label for i in corrected)
    if not corrected or min(per_class.values()) < 2:
        return None
    folds = min(folds, len(corrected))
    right = 0
    for k in range(folds):
        held = set(corrected[k::folds])
        rest = [e for i, e in enumerate(data) if i not in held]
        if len({e.label for e in rest}) < 2:
            return None
        model = train(field, rest, now)
        right += sum(model.predict(data[i].features)[0] == data[i].label for i in held)
    return right / len(corrected)


# --- learn, store, use ----------------------------------------------------------------------

def corrections_of(field: str) -> int:
    """How many cases agents corrected the field of (what `min_corrections` counts)."""
    row = db.query_one('SELECT COUNT(DISTINCT "case_id") FROM "correction" WHERE "field" = ?', [field])
    return int(row[0] or 0)


def learn(field: str, now: datetime, min_corrections: int) -> Model:
    """Train a new model of `field` and store it. Training reads the cases outside any
    transaction and may take a minute on a large desk; only storing the model takes the
    write lock (briefly), so intake and the sender go on meanwhile. Call it outside a
    transaction."""
    have = corrections_of(field)
    if have < min_corrections:
        raise LearnError(f"{have} corrections of {field} so far; a model is trained from {min_corrections} "
                         "([learn] min_corrections)")
    model = fit(field, examples(field, now), now)
    with db.transaction():
        row_id = db.insert(LearnedModel, field=field, trained_at=model.trained_at, examples=model.examples,
                           corrections=model.corrections, accuracy=model.accuracy, data=model.to_json())
        old = [m.id for m in LearnedModel.select(LearnedModel.id).where(LearnedModel.field == field)
               .order_by(LearnedModel.trained_at.desc(), LearnedModel.id.desc()).offset(KEEP)]
        if old:
            LearnedModel.delete().where(LearnedModel.id.in_(old)).execute()
    return replace(model, id=row_id)


_loaded: dict[tuple[int, str, int, str], Model] = {}


def current(field: str) -> Model | None:
    """The newest model of `field`, parsed once per stored model (one indexed query a call)."""
    row = db.query_one('SELECT "id", "trained_at" FROM "learned_model" WHERE "field" = ?'
                       ' ORDER BY "trained_at" DESC, "id" DESC LIMIT 1', [field])
    if row is None:
        return None
    key = (id(db.proxy.obj), field, row[0], str(row[1]))  # ids repeat across databases
    model = _loaded.get(key)
    if model is None:
        for old in [k for k in _loaded if k[:2] == key[:2]]:  # a field's model is replaced, not kept beside
            del _loaded[old]
        model = _loaded[key] = Model.from_row(LearnedModel.get_by_id(row[0]))
    return model


@dataclass(frozen=True)
class InUse:
    """The models the classifier weighs in, with the configured weights."""
    type: Model | None
    priority: Model | None
    weight: float
    priority_probability: float


def in_use(weight: float, priority_probability: float, starter: bool = True) -> InUse | None:
    """The models to weigh beside the rules: each field's newest learnt model, else (with
    `starter`) the one shipped; None when there are none, or with weight 0."""
    if weight <= 0:
        return None
    shipped = starter_models() if starter else {}
    models = InUse(current("type") or shipped.get("type"), current("priority") or shipped.get("priority"),
                   weight, priority_probability)
    return models if models.type or models.priority else None


# --- the starter model ----------------------------------------------------------------------

STARTER = "starter-model.json"  # in mailproc/defaults: trained by scripts/train-starter-model
_starter: dict[str, Model] | None = None


def starter_models() -> dict[str, Model]:
    """The models shipped with mailproc, trained on the labelled set's development part
    (tests/labelled): what a new desk weighs beside the rules until its agents' corrections
    train its own. Read once."""
    global _starter
    if _starter is None:
        from importlib import resources

        source = resources.files("mailproc.defaults").joinpath(STARTER)
        _starter = read_starter(source.read_text(encoding="utf-8")) if source.is_file() else {}
    return _starter


def read_starter(text: str) -> dict[str, Model]:
    data = json.loads(text)
    trained_at = datetime.fromisoformat(data["trained_at"])
    return {field: Model.from_data(model, field=field, trained_at=trained_at, examples=model["examples"],
                                   corrections=0, accuracy=None,
                                   source=f"starter model, {model['examples']} labelled mails")
            for field, model in data["models"].items()}


def write_starter(path, models: list[Model], about: str, now: datetime) -> None:
    """Write the shipped starter models (scripts/train-starter-model)."""
    data = {"about": about, "trained_at": utc(now).isoformat(),
            "models": {m.field: {**_rounded(m.data()), "examples": m.examples} for m in models}}
    path.write_text(json.dumps(data, separators=(",", ":"), sort_keys=True) + "\n", encoding="utf-8")


def _rounded(data: dict[str, Any]) -> dict[str, Any]:
    """Four significant digits: the file stays small, the probabilities the same to 1e-3."""
    def r(x: float) -> float:
        return float(f"{x:.4g}")
    return {**data, "intercepts": [r(x) for x in data["intercepts"]], "idf": [r(x) for x in data["idf"]],
            "weights": [[r(x) for x in column] for column in data["weights"]]}


def slot_jobs(ctx) -> list:
    """`[learn] nightly`: retrain every day at that local time (mailproc.scheduled). The slot
    is claimed in the scheduler's transaction; the training runs after it, outside (`after`),
    so the write lock is not held while scikit-learn fits. A failure is logged and reported;
    the next night tries again."""
    from mailproc import slots
    from mailproc.scheduled import SlotJob

    at = ctx.config.learn.nightly
    if at is None:
        return []
    return [SlotJob("learn", slots.parse_slots(at.strftime("%H:%M")), ctx.config.timezone, lambda *_: 0,
                    after=train_nightly)]


def train_nightly(ctx, now: datetime) -> None:
    """Train each field that has enough corrections; a field without enough is only logged,
    and one field failing does not stop the other."""
    failed = []
    for field in FIELDS:
        try:
            model = learn(field, now, ctx.config.learn.min_corrections)
        except LearnError as exc:
            log.info("no %s model: %s", field, exc)
            continue
        except Exception as exc:
            log.exception("training the %s model failed", field)
            failed.append(f"{field}: {exc}")
            continue
        log.info("trained the %s model on %d cases (%d corrected), cross-validated accuracy %s", field,
                 model.examples, model.corrections, "n/a" if model.accuracy is None else f"{model.accuracy:.2f}")
    if failed:
        raise LearnError("; ".join(failed))


def describe(model: Model, top: int = 8) -> dict[str, Any]:
    """What `classify learn` prints of a model: its figures and each class's strongest terms."""
    strongest = {}
    for c, column in zip(model.classes, model.weights):
        best = sorted(range(len(model.terms)), key=lambda i: -column[i])[:top]
        strongest[c] = [model.terms[i] for i in best if column[i] > 0]
    return {"field": model.field, "trained_at": model.trained_at.isoformat(), "examples": model.examples,
            "corrections": model.corrections, "accuracy": model.accuracy, "classes": list(model.classes),
            "terms": len(model.terms), "strongest": strongest}
