"""Stripe's API, through the official ``stripe`` library: what the bridge reads back from Stripe.

Webhook events do not carry a Checkout Session's line items; they are fetched here (Stripe's
fulfilment guide: retrieve the session with ``expand=["line_items"]``, then every further page).
The API base is configurable (KB_STRIPE_API_BASE) so tests and ``make run`` use a local fake.
``account``: the connected account (Stripe Connect) an event came from; its objects are read on that
account (the ``Stripe-Account`` header), since the platform account sees none of them.
"""
from __future__ import annotations

import os
import threading

import stripe

from middleware.stores.errors import StoreError

PAGE = 100


class StripeApi:
    def __init__(self, api_base: str, timeout: float):
        self.api_base, self.timeout = api_base, timeout
        # else the library writes ~/.config/stripe/telemetry_id and reports request timings in headers
        stripe.enable_telemetry = False
        self._local = threading.local()

    def _client(self, api_key: str) -> stripe.StripeClient:
        clients = getattr(self._local, "clients", None)
        if clients is None or self._local.pid != os.getpid():  # one HTTP session per thread and process
            clients = self._local.clients = {}
            self._local.pid = os.getpid()
        client = clients.get(api_key)
        if client is None:
            client = stripe.StripeClient(api_key, base_addresses={"api": self.api_base}, max_network_retries=0,
                                         http_client=stripe.RequestsClient(timeout=self.timeout))
            clients[api_key] = client
        return client

    def checkout_session(self, api_key: str, session_id: str, account: str | None = None) -> tuple[dict, list[dict]]:
        """The session and all its line items (as plain dicts)."""
        client, options = self._client(api_key), _on(account)
        with _classified(f"checkout session {session_id}"):
            data = client.v1.checkout.sessions.retrieve(session_id, params={"expand": ["line_items"]},
                                                        options=options).to_dict()
            page = data.pop("line_items", None) or {"data": [], "has_more": False}
            items, has_more = list(page["data"]), page.get("has_more", False)
            while has_more and items:
                more = client.v1.checkout.sessions.line_items.list(
                    session_id, params={"limit": PAGE, "starting_after": items[-1]["id"]}, options=options).to_dict()
                items += more["data"]
                has_more = more.get("has_more", False)
        return data, items

    def checkout_sessions_of(self, api_key: str, payment_intent: str, account: str | None = None) -> list[str]:
        """Ids of the Checkout Sessions that made a PaymentIntent (none for a direct payment)."""
        with _classified(f"checkout sessions of {payment_intent}"):
            page = self._client(api_key).v1.checkout.sessions.list(params={"payment_intent": payment_intent,
                                                                           "limit": 10}, options=_on(account)).to_dict()
        return [s["id"] for s in page["data"]]

    def charge(self, api_key: str, charge_id: str, account: str | None = None) -> dict:
        """A Charge (its ``payment_intent`` traces a refund or dispute that names only the charge)."""
        with _classified(f"charge {charge_id}"):
            return self._client(api_key).v1.charges.retrieve(charge_id, options=_on(account)).to_dict()

    def refunds_of(self, api_key: str, charge_id: str, account: str | None = None) -> list[dict]:
        """Every Refund of a charge, oldest first (``charge.refunded`` no longer embeds them)."""
        client, refunds, params = self._client(api_key), [], {"charge": charge_id, "limit": PAGE}
        with _classified(f"refunds of {charge_id}"):
            while True:
                page = client.v1.refunds.list(params=params, options=_on(account)).to_dict()
                refunds += page["data"]
                if not (page.get("has_more") and page["data"]):
                    break
                params = {**params, "starting_after": page["data"][-1]["id"]}
        return refunds[::-1]  # Stripe lists newest first

    def create_refund(self, api_key: str, params: dict, idempotency_key: str, account: str | None = None) -> dict:
        """Create a Refund (``POST /v1/refunds``: ``payment_intent`` or ``charge``, optional ``amount``, ``reason``,
        ``metadata``), sent with ``idempotency_key`` so a retry after a lost answer makes no second refund."""
        with _classified(f"refund of {params.get('payment_intent') or params.get('charge')}"):
            return self._client(api_key).v1.refunds.create(
                params=params, options={**_on(account), "idempotency_key": idempotency_key}).to_dict()

    def payment_intent(self, api_key: str, intent_id: str, account: str | None = None) -> dict:
        with _classified(f"payment intent {intent_id}"):
            return self._client(api_key).v1.payment_intents.retrieve(intent_id, options=_on(account)).to_dict()

    def invoice_payments(self, api_key: str, invoice_id: str, account: str | None = None) -> list[dict]:
        """The invoice's InvoicePayment objects (API versions from 2025-03-31), every page."""
        client, options, found = self._client(api_key), _on(account), []
        with _classified(f"payments of invoice {invoice_id}"):
            params = {"invoice": invoice_id, "limit": PAGE}
            while True:
                page = client.v1.invoice_payments.list(params=params, options=options).to_dict()
                found += page["data"]
                if not page.get("has_more") or not page["data"]:
                    return found
                params = {**params, "starting_after": page["data"][-1]["id"]}


    def invoice_lines(self, api_key: str, invoice_id: str, after: str, account: str | None = None) -> list[dict]:
        """The invoice's lines after line ``after`` (the last one its event carried), every page: Stripe's
        ``GET /v1/invoices/{invoice}/lines`` (stripe-python's ``Invoice.list_lines``)."""
        client, options, found = self._client(api_key), _on(account), []
        with _classified(f"lines of invoice {invoice_id}"):
            params = {"limit": PAGE, "starting_after": after}
            while True:
                page = client.v1.invoices.line_items.list(invoice_id, params=params, options=options).to_dict()
                found += page["data"]
                if not page.get("has_more") or not page["data"]:
                    return found
                params = {**params, "starting_after": page["data"][-1]["id"]}


def _on(account: str | None) -> dict:
    """Request options: a connected account's objects are read on that account."""
    return {"stripe_account": account} if account else {}


class _classified:
    """Turn the stripe library's errors into StoreError: 5xx, 429 and network errors are transient."""

    def __init__(self, what: str):
        self.what = what

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is None or not isinstance(exc, stripe.StripeError):
            return False
        status = getattr(exc, "http_status", None)
        message = f"Stripe: {self.what}: {exc.user_message or exc.__class__.__name__}"
        if isinstance(exc, stripe.APIConnectionError) or status is None:
            raise StoreError(message, transient=True, code="stripe_unreachable") from exc
        if status == 429 or status >= 500:
            headers = exc.headers or {}
            retry_after = headers.get("Retry-After") or headers.get("retry-after")
            raise StoreError(message, transient=True, code=f"stripe_{status}", status=status,
                             retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None) from exc
        code = "stripe_not_found" if status == 404 else (
            "stripe_auth" if status in (401, 403) else f"stripe_{status}")
        raise StoreError(message, transient=False, code=code, status=status) from exc
