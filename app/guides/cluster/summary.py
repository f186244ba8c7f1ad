"""Step 7: what was done, by whom, with what evidence, and what to do next."""

from app.wizard.engine import Step


class Summary(Step):
    """No remote work: a report of the deployment."""

    key = "summary"
    title = "Summary"
    purpose = "Review the finished installation and keep its report."
    guidance = (
        "The cluster part of the installation is complete. Configure Access Manager's features "
        "(authentication, authorization rules, agents) in the configuration tool on the node that "
        "currently owns the role.",
        "Set a master key recovery password for the database and keep it offline.",
    )
    runnable = False


STEP = Summary()
