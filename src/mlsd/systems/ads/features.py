"""The ad click features the TalkingData Kaggle winners used, as mlsd aggregation views.

Click counts per ip / ip-app / ip-app-os / app-channel over 10 minutes, 1 hour and 1 day; seconds
since the previous click of the same ip-device-os; distinct apps and channels per ip over a day.
"""

from __future__ import annotations

from mlsd.events.log import EventLog
from mlsd.features import Aggregation, AggregationView, Entity, EventLogSource

WINDOWS = ("10m", "1h", "1d")

IP = Entity("ip", ("ip",))
IP_APP = Entity("ip_app", ("ip", "app"))
IP_APP_OS = Entity("ip_app_os", ("ip", "app", "os"))
APP_CHANNEL = Entity("app_channel", ("app", "channel"))
IP_DEVICE_OS = Entity("ip_device_os", ("ip", "device", "os"))


def click_views(log: EventLog) -> list[AggregationView]:
    """The aggregation views over a click log (TalkingData's schema)."""
    source = EventLogSource(log)
    counts = tuple(Aggregation("count", window=w) for w in WINDOWS)
    return [
        AggregationView("ip_clicks", (IP,), source, (
            *counts,
            Aggregation("distinct_count", "app", window="1d"),
            Aggregation("distinct_count", "channel", window="1d"),
            Aggregation("count", name="count_all"),
        )),
        AggregationView("ip_app_clicks", (IP_APP,), source, counts),
        AggregationView("ip_app_os_clicks", (IP_APP_OS,), source, counts),
        AggregationView("app_channel_clicks", (APP_CHANNEL,), source, (*counts, Aggregation("mean", "is_attributed",
                                                                                           window="1d"))),
        AggregationView("ip_device_os_clicks", (IP_DEVICE_OS,), source, (
            Aggregation("time_since_last", name="seconds_since_previous"),
            Aggregation("count", window="1h"),
        )),
    ]
