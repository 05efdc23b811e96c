"""What campaigns earned: clicks on their links, orders attributed to their messages, and the report."""
