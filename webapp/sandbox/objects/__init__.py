"""Builders for Stripe-shaped objects, field for field as the pinned API version returns them.

Fields the sandbox has no use for are present with Stripe's neutral values (null, false, [] or
{}), so code reading them sees what real Stripe would send for an account that does not use them.
"""

from webapp.sandbox.objects.billing import *  # noqa: F403
from webapp.sandbox.objects.catalog import *  # noqa: F403
from webapp.sandbox.objects.common import *  # noqa: F403
from webapp.sandbox.objects.credit_notes import *  # noqa: F403
from webapp.sandbox.objects.customers import *  # noqa: F403
from webapp.sandbox.objects.discounts import *  # noqa: F403
from webapp.sandbox.objects.payments import *  # noqa: F403
from webapp.sandbox.objects.schedules import *  # noqa: F403
from webapp.sandbox.objects.sessions import *  # noqa: F403
