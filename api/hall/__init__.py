"""The one-stop service hall (一站式服务大厅): published procedures, applications moved through their steps, vehicles and parking permits."""
