"""Transition tables as data, and the one place that fires them.

Every machine of the core is a tuple of :class:`Rule` rows: trigger, source states,
destination, *who* may fire it and, optionally, *when* (a named condition of the room,
e.g. its seat mode). A :class:`Table` turns the rows into one shared
``transitions.Machine`` (``auto_transitions=False``, invalid triggers raise) that serves
many models, and fires triggers with precise errors:

* a trigger with no row for the model's current state -> 409 ``illegal_transition``;
* rows exist, but none for the acting roles -> 403 ``forbidden``;
* rows exist for the acting roles, but none whose condition holds -> 409;
* either way the model's state is left unchanged.

Several rows may share a trigger and a source state when they differ by actor (the callee's
``end`` of an unanswered call rejects it, the caller's cancels it). The index is keyed by
(trigger, source, actor); :meth:`Table.check` picks the first row, in table order, that the
acting roles and the holding conditions permit.

A row whose ``dest`` is ``None`` is a *documented no-op* (an internal transition in
``transitions`` terms): it is legal, changes nothing and exists so that tolerance (e.g. a
duplicate ``end`` of an ended call) is written in the table, not hidden in a code path.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from transitions import Machine, MachineError

from stream_core.errors import UTDStreamException

__all__ = ["Actor", "Rule", "Table"]

S = TypeVar("S", bound=enum.Enum)


class Actor(enum.Enum):
    """Who may fire a rule, relative to the model it acts on."""

    SELF = "self"  # the participant the model belongs to
    HOST = "host"  # the room's host
    SELF_OR_HOST = "self_or_host"
    CALLER = "caller"
    CALLEE = "callee"
    PARTY = "party"  # caller or callee
    SYSTEM = "system"  # the engine itself: timers, webhooks
    ANY = "any"  # checked by the coordinator that composes machines


@dataclass(frozen=True, slots=True)
class Rule(Generic[S]):
    """One row of a transition table.

    ``when`` names a condition of the surroundings (not of the model) that must hold for
    the row to apply, e.g. ``"free mode"``; the coordinator reports which conditions hold.
    """

    trigger: str
    source: tuple[S, ...]
    dest: S | None
    actor: Actor
    note: str = ""
    when: str | None = None

    @property
    def label(self) -> str:
        """How the row reads on a diagram edge: ``take [self] (free mode)``."""
        who = self.actor.value.replace("_", " ")
        return f"{self.trigger} [{who}]" + (f" ({self.when})" if self.when else "")


class _Picks:
    """``transitions`` condition that lets a leg fire only for its own row.

    Only legs that share a trigger and a source with another row carry it; ``Table.fire``
    passes the chosen row, so the machine takes exactly the leg the table picked. A bare
    trigger call on a model (no row: benchmarks, raw ``transitions`` use, which checks no
    actor either) takes the first leg, as ``transitions`` would.
    """

    def __init__(self, rule: Rule[Any]) -> None:
        self.rule = rule

    def __call__(self, *args: Any, row: Rule[Any] | None = None, **kwargs: Any) -> bool:
        return row is None or row is self.rule

    def __repr__(self) -> str:
        return f"<_Picks {self.rule.label}>"


class Table(Generic[S]):
    """A machine's states and rules, and the shared ``transitions.Machine`` built from them."""

    def __init__(self, name: str, states: type[S], initial: S, rules: Sequence[Rule[S]]) -> None:
        self.name = name
        self.states = states
        self.initial = initial
        self.rules: tuple[Rule[S], ...] = tuple(rules)
        self._index: dict[tuple[str, S], tuple[Rule[S], ...]] = {}
        seen: set[tuple[str, S, Actor]] = set()
        for rule in self.rules:
            for src in rule.source:
                key = (rule.trigger, src, rule.actor)
                if key in seen:
                    raise ValueError(
                        f"{name}: two rules for {rule.trigger!r} from {src.name} "
                        f"by {rule.actor.value}")
                seen.add(key)
                pair = (rule.trigger, src)
                self._index[pair] = self._index.get(pair, ()) + (rule,)

    @property
    def triggers(self) -> tuple[str, ...]:
        """Every trigger name, in table order, without repeats."""
        return tuple(dict.fromkeys(r.trigger for r in self.rules))

    def transitions_spec(self) -> list[dict[str, Any]]:
        """The rows in the dict form ``transitions`` (and its diagram extension) takes."""
        spec = []
        for rule in self.rules:
            row: dict[str, Any] = {"trigger": rule.trigger, "source": list(rule.source),
                                   "dest": rule.dest}
            if any(len(self._index[(rule.trigger, s)]) > 1 for s in rule.source):
                row["conditions"] = [_Picks(rule)]
            spec.append(row)
        return spec

    def new_machine(self, machine_cls: type[Machine] = Machine, **kwargs: Any) -> Machine:
        """Build the shared machine. Models join it with :meth:`attach`."""
        return machine_cls(
            model=None,
            states=self.states,
            initial=self.initial,
            transitions=self.transitions_spec(),
            auto_transitions=False,
            ignore_invalid_triggers=False,
            name=self.name,
            **kwargs,
        )

    def rules_for(self, trigger: str, state: S) -> tuple[Rule[S], ...]:
        """The rows ``trigger`` may fire from ``state``; raises 409 when there is none."""
        if trigger not in self.triggers:
            raise UTDStreamException.invalid(f"{self.name}: unknown trigger {trigger!r}")
        rules = self._index.get((trigger, state))
        if rules is None:
            raise UTDStreamException.illegal(
                f"{self.name}: cannot {trigger} while {state.value}"
            )
        return rules

    def allowed_triggers(self, state: S) -> tuple[str, ...]:
        return tuple(t for (t, s) in self._index if s == state)

    def check(self, state: S, trigger: str, *, actors: Iterable[Actor],
              conditions: Iterable[str] = ()) -> Rule[S]:
        """The row ``trigger`` would fire from ``state`` for ``actors``; raises if none may.

        ``conditions`` are the named conditions that hold now (see :attr:`Rule.when`).
        Coordinators that move several models at once check every move first and fire
        after, so a refused composite change leaves every model as it was.
        """
        rules = self.rules_for(trigger, state)
        held = set(actors)
        permitted = [r for r in rules if r.actor is Actor.ANY or _permits(r.actor, held)]
        if not permitted:
            who = " or ".join(r.actor.value.replace("_", " ") for r in rules)
            raise UTDStreamException.forbidden(f"{self.name}: only the {who} may {trigger}")
        holding = set(conditions)
        for rule in permitted:
            if rule.when is None or rule.when in holding:
                return rule
        unmet = " or ".join(str(r.when) for r in permitted)
        raise UTDStreamException.illegal(
            f"{self.name}: cannot {trigger} while {state.value} unless {unmet}")

    def target(self, state: S, trigger: str, *, actors: Iterable[Actor],
               conditions: Iterable[str] = ()) -> S:
        """The state ``trigger`` leads to from ``state`` (itself for a no-op row); pure.

        For immutable values (a :class:`~stream_core.models.UTDCall`) that need no model on
        a machine: same rows, same errors as :meth:`fire`, and safe from any thread.
        """
        rule = self.check(state, trigger, actors=actors, conditions=conditions)
        return state if rule.dest is None else rule.dest

    def fire(self, model: Any, trigger: str, *, actors: Iterable[Actor],
             conditions: Iterable[str] = ()) -> Rule[S]:
        """Fire ``trigger`` on ``model`` (attached to this table's machine); return the row.

        ``actors`` are the roles the acting identity holds towards this model (computed by
        the coordinator, e.g. ``{SELF}`` or ``{HOST, SELF}``). ``Actor.ANY`` rows accept all.
        """
        rule = self.check(getattr(model, "state"), trigger, actors=actors,
                          conditions=conditions)
        if rule.dest is None:
            return rule  # documented no-op row: legal, changes nothing
        try:
            moved = getattr(model, trigger)(row=rule)
        except MachineError as exc:  # pragma: no cover - the index mirrors the machine
            raise UTDStreamException.illegal(f"{self.name}: {exc.value}") from exc
        assert moved, f"{self.name}: the machine refused the row {rule.label}"
        return rule

    def path(self, source: S, dest: S) -> Rule[S] | None:
        """The row leading from ``source`` to ``dest`` (for mirrors that follow the engine)."""
        for rule in self.rules:
            if source in rule.source and rule.dest == dest:
                return rule
        return None


def _permits(required: Actor, held: set[Actor]) -> bool:
    if required in held:
        return True
    if required is Actor.SELF_OR_HOST:
        return bool(held & {Actor.SELF, Actor.HOST})
    if required is Actor.PARTY:
        return bool(held & {Actor.CALLER, Actor.CALLEE})
    return False
