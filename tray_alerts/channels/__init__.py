"""The channel registry: type name -> "module:Class", imported only when a channel of that type is used."""
from __future__ import annotations

from importlib import import_module
from typing import Mapping, Protocol

from .. import templates
from .base import Channel, DeliveryError, NotConfigured, SettingError

CHANNEL_TYPES: dict[str, str] = {
    "log": "tray_alerts.channels.log:LogChannel",
    "desktop": "tray_alerts.channels.desktop:DesktopChannel",
    "slack": "tray_alerts.channels.slack:SlackChannel",
    "email": "tray_alerts.channels.email:EmailChannel",
    "sms": "tray_alerts.channels.sms:SmsChannel",
    "webhook": "tray_alerts.channels.webhook:WebhookChannel",
    "alertmanager": "tray_alerts.channels.alertmanager:AlertmanagerChannel",
    "apprise": "tray_alerts.channels.apprise:AppriseChannel",
}

__all__ = ["CHANNEL_TYPES", "Channel", "DeliveryError", "NotConfigured", "SettingError", "build_channel",
           "channel_class"]


class ChannelType(Protocol):
    """A channel class: built from its settings section."""

    def from_options(self, name: str, options: Mapping[str, str]) -> Channel: ...


def channel_class(type_name: str) -> ChannelType:
    """The class registered for a channel type; KeyError for an unknown type."""
    module_name, class_name = CHANNEL_TYPES[type_name].split(":")
    return getattr(import_module(module_name), class_name)


def build_channel(name: str, type_name: str, options: Mapping[str, str]) -> Channel:
    """A ready channel with its templates, or NotConfigured (a required value is empty) / SettingError (a bad
    value, a template that cannot be used)."""
    kind = channel_class(type_name)
    try:
        wording = templates.wording(name, options, getattr(kind, "TEMPLATES", ()))
    except templates.TemplateProblem as problem:
        raise SettingError(problem.key, problem.problem) from None
    channel = kind.from_options(name, {key: value for key, value in options.items()
                                       if key not in templates.TEMPLATE_KEYS})
    if wording is not templates.PLAIN:
        channel.wording = wording  # type: ignore[attr-defined]
    return channel
