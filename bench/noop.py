"""The e2e and deliveries baselines' job: does nothing, so a run measures RQ's own cost per job."""


def noop(fulfilment_id: str) -> str:
    return fulfilment_id
