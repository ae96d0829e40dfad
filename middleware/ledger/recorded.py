"""What an inbound event already recorded led to: the answer a store's duplicate delivery gets."""
from __future__ import annotations

from sqlalchemy import select

from middleware.ledger.models import Fulfilment, InboundEvent


def recorded_outcome(svc, source: str, provider_event_id: str) -> dict:
    """``outcome`` (pending, processed, ignored, failed) and, once the event reached an order, its
    ``fulfilmentId`` and ``state`` — as they are now in the ledger."""
    with svc.session() as session:
        row = session.execute(select(InboundEvent.outcome, InboundEvent.fulfilment_id, Fulfilment.state)
                              .outerjoin(Fulfilment, Fulfilment.id == InboundEvent.fulfilment_id)
                              .where(InboundEvent.source == source,
                                     InboundEvent.provider_event_id == provider_event_id)).first()
    if row is None:  # erased meanwhile
        return {}
    answer = {"outcome": row.outcome}
    if row.fulfilment_id is not None:
        answer.update(fulfilmentId=row.fulfilment_id, state=row.state)
    return answer
