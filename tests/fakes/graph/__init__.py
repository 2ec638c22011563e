"""A fake Microsoft Graph v1.0 (mail, subscriptions, ``$batch``) and identity platform for tests.

It follows Microsoft's published reference (each module cites the pages it follows) and is
checked by driving it with Microsoft's own Python SDK in ``tests/integration/test_fake_graph.py``.

Usage::

    from tests.fakes.graph import start_fake_graph

    with start_fake_graph() as fake:              # uvicorn on 127.0.0.1:<free port>, own thread
        token = fake.add_user("alice@contoso.test")  # delegated token (Mail.ReadWrite, Mail.Send…)
        msg_id = fake.deliver("alice@contoso.test", raw_mime)        # into Inbox
        httpx.get(f"{fake.url}/v1.0/me/messages", headers={"Authorization": f"Bearer {token}"})

Routes: ``/v1.0/me/...`` and ``/v1.0/users/{id | userPrincipalName}/...`` (mailFolders,
childFolders at any depth, messages, attachments, ``$value``, delta, actions, sendMail),
``/v1.0/subscriptions``, ``/v1.0/$batch``, ``/{tenant}/oauth2/v2.0/token`` and ``/authorize``.

Helpers (plain Python, callable from the test's thread): ``add_user``, ``user_token``,
``user_id``, ``add_app``, ``expire_token``, ``grant_access``, ``create_folder``, ``folder_id``,
``deliver``, ``rest_id``, ``message``, ``modify_as_other_client``, ``expire_delta_tokens``,
``trigger_lifecycle``, ``fail_next``, ``set_latency``, ``concurrency_limit``, ``stats``,
``reset_stats``, ``notifications_sent``, ``wait_notifications``, ``outbound`` (sent mail),
``errors`` (tracebacks of fake bugs, answered as 500).

Modules: ``server`` (routing, auth, throttling, batch, thread), ``model`` (mailbox state, MIME),
``odata`` (query options), ``extended`` (single-value extended properties, ``$expand``),
``folders``, ``messages``, ``delta``, ``subscriptions``, ``identity``, ``context``, ``errors``.
"""

from tests.fakes.graph.server import FakeGraph, OutboundMail, running_fake_graph, start_fake_graph

__all__ = ["FakeGraph", "OutboundMail", "running_fake_graph", "start_fake_graph"]
