"""Prompt templates: one jinja2 string, or a list of role messages with placeholders."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

from chainweave._internal.templates import Template
from chainweave.errors import ChainInputError, InputValidationError
from chainweave.types import Message

__all__ = ["PromptSpec", "PromptTemplate"]

_ROLES = ("system", "user", "assistant")

#: A prompt as given to a chain: a template string (sent as one user message), or a list
#: of ``(role, template)`` pairs or ``{"role": ..., "content": ...}`` dicts. The role
#: ``"placeholder"`` takes a variable name and inserts the list of messages it holds.
PromptSpec: TypeAlias = str | Sequence[tuple[str, str] | Mapping[str, Any]]


class PromptTemplate:
    """A compiled prompt: ``messages(inputs)`` renders it into chat messages.

    Args:
        prompt: See :data:`PromptSpec`. ``"Complete this: {{ input }}"`` is one user
            message; ``[("system", "You are {{ persona }}."), ("placeholder",
            "history"), ("user", "{{ question }}")]`` is a conversation.
        where: Who owns it (the chain's name), for error messages.

    Attributes:
        variables: The names the prompt reads from the inputs.

    Raises:
        TemplateError: A template does not compile.
        InputValidationError: The prompt is neither a string nor a list of messages,
            or a message has an unknown role.
    """

    __slots__ = ("_parts", "_single", "source", "variables", "where")

    def __init__(self, prompt: PromptSpec, *, where: str) -> None:
        self.source = prompt
        self.where = where
        self._single: Template | None = None
        self._parts: list[tuple[str, Template | str]] = []
        if isinstance(prompt, str):
            self._single = Template(prompt, where=where)
            self.variables = self._single.variables
            return
        if not isinstance(prompt, Sequence) or not prompt:
            raise InputValidationError(
                f"{where}: a prompt is a template string or a non-empty list of messages, "
                f"got {type(prompt).__name__}", field="prompt", node=where)
        variables: set[str] = set()
        for index, item in enumerate(prompt):
            role, content = _role_and_content(where, index, item)
            if role == "placeholder":
                if not content.isidentifier():
                    raise InputValidationError(
                        f"{where}: prompt[{index}] placeholder must name a variable, "
                        f"got {content!r}", field=f"prompt.{index}", node=where)
                self._parts.append((role, content))
                variables.add(content)
            else:
                template = Template(content, where=f"{where} prompt[{index}]")
                self._parts.append((role, template))
                variables |= template.variables
        self.variables = frozenset(variables)

    def __repr__(self) -> str:
        return f"PromptTemplate({self.source!r})"

    def messages(self, inputs: Mapping[str, Any]) -> list[Message]:
        """The rendered messages.

        Raises:
            ChainInputError: A variable the prompt uses is missing, or a placeholder's
                value is not a list of messages.
            TemplateError: The sandbox refused a template.
        """
        if self._single is not None:
            return [Message(role="user", content=self._single.render(inputs))]
        messages: list[Message] = []
        for role, part in self._parts:
            if isinstance(part, Template):
                messages.append(Message(role=role, content=part.render(inputs)))
            else:
                messages.extend(self._placeholder(part, inputs))
        return messages

    def _placeholder(self, name: str, inputs: Mapping[str, Any]) -> list[Message]:
        if name not in inputs:
            raise ChainInputError(f"{self.where}: placeholder variable {name!r} is missing",
                                  missing=[name], field=name, node=self.where)
        value = inputs[name]
        if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence):
            raise ChainInputError(f"{self.where}: placeholder {name!r} must be a list of "
                                  f"messages, got {type(value).__name__}", field=name,
                                  node=self.where)
        try:
            return [item if isinstance(item, Message) else Message.model_validate(item)
                    for item in value]
        except InputValidationError as exc:
            raise ChainInputError(f"{self.where}: placeholder {name!r} holds a malformed "
                                  f"message: {exc.message}", field=name, node=self.where) from None


def _role_and_content(where: str, index: int, item: object) -> tuple[str, str]:
    if isinstance(item, tuple) and len(item) == 2:
        role, content = item
    elif isinstance(item, Mapping) and set(item) == {"role", "content"}:
        role, content = item["role"], item["content"]
    else:
        raise InputValidationError(
            f"{where}: prompt[{index}] must be a (role, template) pair or a "
            f"{{'role', 'content'}} dict, got {item!r}", field=f"prompt.{index}", node=where)
    if role not in (*_ROLES, "placeholder"):
        raise InputValidationError(
            f"{where}: prompt[{index}] has role {role!r}; use one of "
            f"{', '.join((*_ROLES, 'placeholder'))}", field=f"prompt.{index}.role", node=where)
    if not isinstance(content, str):
        raise InputValidationError(f"{where}: prompt[{index}] content must be a string",
                                   field=f"prompt.{index}.content", node=where)
    return role, content
