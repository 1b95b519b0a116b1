"""Transition tables as data, and the one place that fires them.

Every machine of the core is a tuple of :class:`Rule` rows: trigger, source states,
destination, and *who* may fire it. A :class:`Table` turns the rows into one shared
``transitions.Machine`` (``auto_transitions=False``, invalid triggers raise) that serves
many models, and fires triggers with precise errors:

* a trigger with no row for the model's current state -> 409 ``illegal_transition``;
* a row whose actor does not match -> 403 ``forbidden``;
* either way the model's state is left unchanged.

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
    """One row of a transition table."""

    trigger: str
    source: tuple[S, ...]
    dest: S | None
    actor: Actor
    note: str = ""


class Table(Generic[S]):
    """A machine's states and rules, and the shared ``transitions.Machine`` built from them."""

    def __init__(self, name: str, states: type[S], initial: S, rules: Sequence[Rule[S]]) -> None:
        self.name = name
        self.states = states
        self.initial = initial
        self.rules: tuple[Rule[S], ...] = tuple(rules)
        self._index: dict[tuple[str, S], Rule[S]] = {}
        for rule in self.rules:
            for src in rule.source:
                key = (rule.trigger, src)
                if key in self._index:
                    raise ValueError(f"{name}: two rules for {rule.trigger!r} from {src.name}")
                self._index[key] = rule

    @property
    def triggers(self) -> tuple[str, ...]:
        """Every trigger name, in table order, without repeats."""
        return tuple(dict.fromkeys(r.trigger for r in self.rules))

    def transitions_spec(self) -> list[dict[str, Any]]:
        """The rows in the dict form ``transitions`` (and its diagram extension) takes."""
        return [
            {"trigger": r.trigger, "source": list(r.source), "dest": r.dest} for r in self.rules
        ]

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

    def rule_for(self, trigger: str, state: S) -> Rule[S]:
        """The row that ``trigger`` fires from ``state``; raises 409 when there is none."""
        if trigger not in self.triggers:
            raise UTDStreamException.invalid(f"{self.name}: unknown trigger {trigger!r}")
        rule = self._index.get((trigger, state))
        if rule is None:
            raise UTDStreamException.illegal(
                f"{self.name}: cannot {trigger} while {state.value}"
            )
        return rule

    def allowed_triggers(self, state: S) -> tuple[str, ...]:
        return tuple(t for (t, s) in self._index if s == state)

    def check(self, state: S, trigger: str, *, actors: Iterable[Actor]) -> Rule[S]:
        """The row ``trigger`` would fire from ``state`` for ``actors``; raises if none may.

        Coordinators that move several models at once check every move first and fire
        after, so a refused composite change leaves every model as it was.
        """
        rule = self.rule_for(trigger, state)
        if rule.actor is not Actor.ANY and not _permits(rule.actor, set(actors)):
            who = rule.actor.value.replace("_", " ")
            raise UTDStreamException.forbidden(f"{self.name}: only the {who} may {trigger}")
        return rule

    def fire(self, model: Any, trigger: str, *, actors: Iterable[Actor]) -> Rule[S]:
        """Fire ``trigger`` on ``model`` (attached to this table's machine); return the row.

        ``actors`` are the roles the acting identity holds towards this model (computed by
        the coordinator, e.g. ``{SELF}`` or ``{HOST, SELF}``). ``Actor.ANY`` rows accept all.
        """
        rule = self.check(getattr(model, "state"), trigger, actors=actors)
        if rule.dest is None:
            return rule  # documented no-op row: legal, changes nothing
        try:
            getattr(model, trigger)()
        except MachineError as exc:  # pragma: no cover - the index mirrors the machine
            raise UTDStreamException.illegal(f"{self.name}: {exc.value}") from exc
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
