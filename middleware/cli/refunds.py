"""``flask orders refund``: refund an order through its store (``ops.refunds``), from a shell."""
from __future__ import annotations

import click

from middleware import ops
from middleware.cli.orders import REASON, _find, _ops_message, orders
from middleware.services import services


@orders.command("refund")
@click.argument("ref")
@REASON
@click.option("--amount", type=click.IntRange(1, ops.MAX_AMOUNT),
              help="Stripe: a partial refund in the currency's minor units (cents); default all that is left.")
@click.option("--stripe-reason", type=click.Choice(ops.STRIPE_REFUND_REASONS), help="Stripe: the reason it records.")
@click.option("--revoke/--no-revoke", default=True, show_default=True,
              help="Google Play: --no-revoke refunds the money and takes nothing back.")
@click.option("--idempotency-key", help="Send the same key again after a failure: never a second refund.")
def refund(ref, reason, amount, stripe_reason, revoke, idempotency_key):
    """Refund an order through its store (Stripe, Google Play). The goods are taken back when the store
    confirms the refund, through the normal reversal path; the App Store cannot be refunded by the developer."""
    with services().session() as session:
        fulfilment_id = _find(session, ref).id
    try:
        done = ops.refund(services(), ops.Actor.cli(), fulfilment_id, reason, amount=amount,
                          stripe_reason=stripe_reason, revoke=revoke, idempotency_key=idempotency_key)
    except ops.OpsError as exc:
        raise click.ClickException(_ops_message(exc)) from None
    asked = done["refund"]
    said = f"refund {asked.get('id') or asked.get('payment')} {asked['status']}"
    click.echo(f"{fulfilment_id}: {done['state']} ({said}; audit entry {done['auditId']})")
