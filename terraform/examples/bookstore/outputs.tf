output "url" {
  description = "The bookstore's address."
  value       = "http://${aws_lb.bookstore.dns_name}/"
}

output "autoscaling_group_name" {
  description = "Name of the app's autoscaling group."
  value       = module.bookstore_asg.autoscaling_group_name
}
