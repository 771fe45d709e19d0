"""``ConsumerRefresher`` over the platforms that host consumers: each call goes to the adapter of the
consumer's kind (``app_service``, ``api_management``). Only kinds with a signal reach it."""

from __future__ import annotations

from rotation.consumers import Consumer, ConsumerKind
from rotation.errors import AzureRequestRejected
from rotation.ports import ConsumerObservation, ConsumerRefresher
from shared.azure.api_management import ApiManagementNamedValues
from shared.azure.app_service import AppServiceReferences
from shared.azure.arm_rest import ArmRest


class ArmConsumerPlatforms(ConsumerRefresher):
    def __init__(self, arm: ArmRest) -> None:
        self.sites = AppServiceReferences(arm)
        self.named_values = ApiManagementNamedValues(arm)

    def refresh(self, consumer: Consumer) -> None:
        if consumer.kind is ConsumerKind.APP_SERVICE:
            self.sites.refresh(consumer)
        elif consumer.kind is ConsumerKind.API_MANAGEMENT:
            self.named_values.refresh(consumer)
        else:
            raise AzureRequestRejected(f"{consumer.label}: its platform has no forced refresh")

    def observe(self, consumer: Consumer) -> ConsumerObservation:
        if consumer.kind is ConsumerKind.APP_SERVICE:
            return ConsumerObservation(self.sites.observe(consumer))
        if consumer.kind is ConsumerKind.API_MANAGEMENT:
            return self.named_values.observe(consumer)
        raise AzureRequestRejected(f"{consumer.label}: its platform shows nothing the service can read")
