"""The resources the assets, checks and sensors ask for by name; storage secrets as EnvVars."""

import dagster as dg

from rcm_assets.resources import EmrSourcesResource, LakeResource, LandingStoreResource
from rcm_assets.resources.azure_storage import credentials_from_env
from rcm_assets.resources.nppes import NppesResource
from rcm_assets.resources.who_icd import who_icd_resource


@dg.definitions
def resources() -> dg.Definitions:
    credentials = credentials_from_env()
    return dg.Definitions(
        resources={
            "lake": LakeResource(**credentials),
            "emr_sources": EmrSourcesResource(),
            "landing": LandingStoreResource(**credentials),
            "nppes": NppesResource(),
            "who_icd": who_icd_resource(),
        }
    )
