output "launch_template_id" {
  description = "ID of the launch template whose user-data installs envkit."
  value       = aws_launch_template.app.id
}

output "autoscaling_group_name" {
  description = "Name of the autoscaling group."
  value       = aws_autoscaling_group.app.name
}

output "target_group_arn" {
  description = "ARN of the target group: attach it to a load balancer listener."
  value       = aws_lb_target_group.app.arn
}

output "health_check" {
  description = "The health check the target group and proxy-check share."
  value = {
    port                = var.app_port
    path                = var.health_check_path
    interval            = var.health_check_interval
    timeout             = var.health_check_timeout
    healthy_threshold   = var.healthy_threshold
    unhealthy_threshold = var.unhealthy_threshold
  }
}
