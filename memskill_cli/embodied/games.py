"""ALFWorld game generator: real ALFRED room layouts + the six task types -> `.tw-pddl` game files.

The alfworld wheel ships the PDDL domain, the text grammar, the 120 ALFRED floor plans (which
receptacles each room has) and the goal library, but not the game files. We write ALFRED problems from
those parts: a room's real receptacles, objects of the room's kinds placed where ALFRED allows them, and
the goal of one task type. Splits follow ALFWorld: `train` and `seen` share the training floor plans
(different problems), `unseen` uses the held-out ones.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from memskill_cli.embodied import requirement
from memskill_cli.errors import DataError
from memskill_cli.fileio import stable_hash, write_text

TASK_TYPES = (
    "pick_and_place_simple",
    "look_at_obj_in_light",
    "pick_clean_then_place_in_recep",
    "pick_heat_then_place_in_recep",
    "pick_cool_then_place_in_recep",
    "pick_two_obj_and_place",
)
SPLITS = ("train", "seen", "unseen")
GAME_FILE = "game.tw-pddl"
# The appliance each state-change task needs, and the receptacle types a lamp may stand on.
_APPLIANCE = {"pick_clean_then_place_in_recep": "SinkBasin", "pick_heat_then_place_in_recep": "Microwave",
              "pick_cool_then_place_in_recep": "Fridge"}
_ABILITY = {"pick_clean_then_place_in_recep": "Cleanable", "pick_heat_then_place_in_recep": "Heatable",
            "pick_cool_then_place_in_recep": "Coolable"}
_LAMPS = ("DeskLamp", "FloorLamp")
_LAMP_STANDS = ("Desk", "SideTable", "Dresser", "CoffeeTable", "DiningTable", "TVStand", "Shelf")
# Fast Downward's optimal search for "two objects in one receptacle" grows steeply with the number of
# places to visit (a 33-receptacle kitchen took ~60 s to plan, a 16-receptacle room under 1 s).
_PICK_TWO_MAX_RECEPTACLES = 20


@dataclass(frozen=True)
class Receptacle:
    id: str       # PDDL id in ALFWorld's mangled form, e.g. Sink_bar_1_bar_SinkBasin
    kind: str     # ALFRED type, e.g. SinkBasin


@dataclass(frozen=True)
class Room:
    scene: int
    receptacles: tuple[Receptacle, ...]
    object_kinds: tuple[str, ...]   # pickupable ALFRED object types that occur in this room


@dataclass(frozen=True)
class GameSpec:
    """One generated game: what to write into its `.tw-pddl` file and its metadata."""

    game_id: str
    split: str
    task_type: str
    scene: int
    objective: str
    problem: str

    def metadata(self) -> dict[str, object]:
        return {"game_id": self.game_id, "split": self.split, "task_type": self.task_type, "scene": self.scene,
                "objective": self.objective}


@cache
def _alfred() -> tuple[object, object, Path, str, str]:
    """ALFRED's tables, goal library and floor plans, and the PDDL domain and grammar texts (read once)."""
    requirement()
    import alfworld
    import alfworld.gen.constants as constants
    import alfworld.gen.goal_library as goals
    import alfworld.info

    return (constants, goals, Path(alfworld.__file__).parent / "gen" / "layouts",
            Path(alfworld.info.ALFRED_PDDL_PATH).read_text(), Path(alfworld.info.ALFRED_TWL2_PATH).read_text())


def scenes(split: str) -> list[int]:
    """Floor plans of a split: ALFRED's training scenes for train/seen, its held-out scenes for unseen."""
    constants = _alfred()[0]
    numbers = constants.TEST_SCENE_NUMBERS if split == "unseen" else constants.TRAIN_SCENE_NUMBERS
    return sorted(numbers)


@cache
def load_room(scene: int) -> Room:
    constants, _, layouts, _, _ = _alfred()
    openable = json.loads((layouts / f"FloorPlan{scene}-openable.json").read_text())
    kinds_in_room = json.loads((layouts / f"FloorPlan{scene}-objects.json").read_text())
    counters: dict[str, int] = {}
    receptacles = []
    for key in sorted(openable):
        parts = key.split("|")
        kind = parts[-1] if len(parts) == 5 else parts[0]   # "Sink|x|y|z|SinkBasin" is a SinkBasin
        if kind not in constants.VAL_RECEPTACLE_OBJECTS:
            continue
        counters[kind] = counters.get(kind, 0) + 1
        n = counters[kind]
        # The demangler names "Sink_bar_..._bar_SinkBasin" "sinkbasin": keep ALFWorld's id shape.
        rid = f"{parts[0]}_bar_{n}_bar_{kind}" if len(parts) == 5 else f"{kind}_bar_{n}"
        receptacles.append(Receptacle(rid, kind))
    placeable = set().union(*constants.VAL_RECEPTACLE_OBJECTS.values())
    object_kinds = sorted(k for k in set(kinds_in_room)
                          if (k in placeable and k not in constants.VAL_RECEPTACLE_OBJECTS and "Sliced" not in k)
                          or k in _LAMPS)
    return Room(scene, tuple(receptacles), tuple(object_kinds))


def _holders(room: Room, kind: str) -> list[Receptacle]:
    constants = _alfred()[0]
    if kind in _LAMPS:
        return [r for r in room.receptacles if r.kind in _LAMP_STANDS]
    return [r for r in room.receptacles if kind in constants.VAL_RECEPTACLE_OBJECTS[r.kind]]


def _choose_task(room: Room, task_type: str, rng: random.Random) -> dict[str, str] | None:
    """Pick the goal's object (and receptacle or lamp) so that the game can be won in this room."""
    constants = _alfred()[0]
    kinds_here = {r.kind for r in room.receptacles}
    movable = [k for k in room.object_kinds if k not in _LAMPS and _holders(room, k)]
    if task_type in _APPLIANCE:
        if _APPLIANCE[task_type] not in kinds_here:
            return None
        movable = [k for k in movable if k in constants.VAL_ACTION_OBJECTS[_ABILITY[task_type]]]
    if task_type == "look_at_obj_in_light":
        lamps = [k for k in room.object_kinds if k in _LAMPS and _holders(room, k)]
        if not lamps or not movable:
            return None
        return {"obj": rng.choice(movable), "toggle": rng.choice(lamps)}
    options = []
    for obj in movable:
        for recep in sorted({r.kind for r in _holders(room, obj)} - {_APPLIANCE.get(task_type, "")}):
            # at least one holder that is not the goal receptacle, so the goal is not already met
            if any(r.kind != recep for r in _holders(room, obj)):
                options.append({"obj": obj, "recep": recep})
    return rng.choice(options) if options else None


def generate_game(scene: int, task_type: str, split: str, rng: random.Random) -> GameSpec | None:
    """A random solvable-by-construction problem of `task_type` in floor plan `scene`, or None if the room
    cannot host that task (no microwave for heating, no lamp for looking, ...)."""
    constants, goals, _, _, _ = _alfred()
    room = load_room(scene)
    if task_type == "pick_two_obj_and_place" and len(room.receptacles) > _PICK_TWO_MAX_RECEPTACLES:
        return None
    task = _choose_task(room, task_type, rng)
    if task is None:
        return None
    target, goal_recep = task["obj"], task.get("recep")
    count = rng.randint(2, 3) if task_type == "pick_two_obj_and_place" else rng.randint(1, 2)
    others = [k for k in room.object_kinds if k not in (target, task.get("toggle")) and _holders(room, k)]
    distractors = rng.sample(others, min(len(others), rng.randint(4, 9)))
    placed: list[tuple[str, str, Receptacle]] = []   # (object id, kind, where)
    for kind, n in [(target, count), *[(k, rng.randint(1, 2)) for k in distractors],
                    *([(task["toggle"], 1)] if "toggle" in task else [])]:
        holders = _holders(room, kind)
        if kind == target and goal_recep:
            holders = [r for r in holders if r.kind != goal_recep]
        for i in range(1, n + 1):
            placed.append((f"{kind}_bar_{i}", kind, rng.choice(holders)))
    objective = rng.choice(goals.gdict[task_type]["templates"]).format(
        obj=target.lower(), recep=(goal_recep or "").lower(), toggle=task.get("toggle", "").lower(), mrecep="")
    goal = goals.gdict[task_type]["pddl"].format(obj=target, recep=goal_recep or "", toggle=task.get("toggle", ""),
                                                 mrecep="").replace("#", "-")
    problem = _problem(room, placed, goal, constants)
    game_id = f"{split}-{task_type}-{target}-{goal_recep or task.get('toggle')}-{scene}-{stable_hash(problem, 8)}"
    return GameSpec(game_id, split, task_type, scene, objective, problem)


def _problem(room: Room, placed: list[tuple[str, str, Receptacle]], goal: str, constants: object) -> str:
    """The PDDL problem: every receptacle at its own location, the agent in the middle of the room."""
    location = {r.id: f"loc_bar_{i}" for i, r in enumerate(room.receptacles, start=1)}
    object_kinds = sorted({kind for _, kind, _ in placed})
    receptacle_kinds = sorted({r.kind for r in room.receptacles})
    otypes = sorted({f"{k}Type" for k in object_kinds} | {"KnifeType", "ButterKnifeType"})
    rtypes = sorted({f"{k}Type" for k in receptacle_kinds} | {"SinkBasinType", "MicrowaveType", "FridgeType"})
    abilities = {name: set(kinds) for name, kinds in constants.VAL_ACTION_OBJECTS.items()}
    objects = ["agent1 - agent", "loc_bar_0 - location", *(f"{loc} - location" for loc in location.values()),
               *(f"{r.id} - receptacle" for r in room.receptacles), *(f"{oid} - object" for oid, _, _ in placed),
               *(f"{t} - otype" for t in otypes), *(f"{t} - rtype" for t in rtypes)]
    facts = ["(atLocation agent1 loc_bar_0)"]
    for r in room.receptacles:
        facts += [f"(receptacleType {r.id} {r.kind}Type)", f"(receptacleAtLocation {r.id} {location[r.id]})"]
        if r.kind in constants.OPENABLE_CLASS_SET:
            facts.append(f"(openable {r.id})")
    for oid, kind, where in placed:
        facts += [f"(objectType {oid} {kind}Type)", f"(inReceptacle {oid} {where.id})",
                  f"(objectAtLocation {oid} {location[where.id]})"]
        if kind in _LAMPS:
            facts.append(f"(toggleable {oid})")
            continue
        facts.append(f"(pickupable {oid})")
        facts += [f"({flag} {oid})" for flag, ability in (("cleanable", "Cleanable"), ("heatable", "Heatable"),
                                                          ("coolable", "Coolable")) if kind in abilities[ability]]
    for rkind in receptacle_kinds:
        facts += [f"(canContain {rkind}Type {okind}Type)" for okind in object_kinds
                  if okind in constants.VAL_RECEPTACLE_OBJECTS[rkind]]
    body = "\n        ".join
    return (f"(define (problem alfworld_{room.scene})\n    (:domain alfred)\n"
            f"    (:objects\n        {body(objects)}\n    )\n"
            f"    (:init\n        {body(facts)}\n    )\n{goal.strip()}\n")


def game_json(spec: GameSpec) -> dict[str, object]:
    """The `.tw-pddl` document: domain, grammar with the task text, problem."""
    _, _, _, domain, grammar = _alfred()
    task_grammar = grammar.replace("UNKNOWN GOAL", spec.objective)
    return {"pddl_domain": domain, "grammar": task_grammar, "pddl_problem": spec.problem,
            "solvable": True}


def write_game(spec: GameSpec, root: Path) -> Path:
    path = root / spec.split / spec.game_id / GAME_FILE
    write_text(path, json.dumps(game_json(spec)))
    write_text(path.with_name("game.json"), json.dumps(spec.metadata(), indent=2) + "\n")
    return path


def generate_split(split: str, per_task: int, seed: int) -> list[GameSpec]:
    """`per_task` games of each task type; the same (split, seed) always gives the same games."""
    if split not in SPLITS:
        raise DataError(f"unknown ALFWorld split {split!r}; choose one of {', '.join(SPLITS)}")
    rng = random.Random(f"alfworld:{seed}:{split}")
    floor_plans = scenes(split)
    games: list[GameSpec] = []
    for task_type in TASK_TYPES:
        made, tries = 0, 0
        while made < per_task:
            tries += 1
            if tries > 200 * max(1, per_task):
                raise DataError(f"could not place {per_task} {task_type} games in the {split} floor plans")
            spec = generate_game(rng.choice(floor_plans), task_type, split, rng)
            if spec is not None and all(g.game_id != spec.game_id for g in games):
                games.append(spec)
                made += 1
    return games


_TASK_DIR = re.compile(r"^(" + "|".join(TASK_TYPES) + r")-")


def task_type_of(path: Path) -> str:
    """An official game's task type, read from its folder name (`pick_heat_then_place_in_recep-Egg-...`)."""
    for part in reversed(path.parts):
        match = _TASK_DIR.match(part)
        if match:
            return match.group(1)
    raise DataError("cannot tell the task type from the path (expected a folder named <task_type>-...)",
                    file=str(path))
