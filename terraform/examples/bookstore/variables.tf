variable "region" {
  description = "AWS region of the bookstore."
  type        = string
  default     = "us-east-1"
}

variable "ami_id" {
  description = "Debian 12 AMI of the app instances."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the bookstore."
  type        = string
}

variable "subnet_ids" {
  description = "Subnets of the load balancer and the instances (two zones at least)."
  type        = list(string)
}

variable "security_group_ids" {
  description = "Security groups of the load balancer and the instances."
  type        = list(string)
}

variable "envkit_deb_url" {
  description = "HTTPS URL of the envkit .deb the instances install."
  type        = string
}

variable "database_host" {
  description = "Host name of the shop database."
  type        = string
}

variable "backup_password" {
  description = "Password of the shop database's backup user (e.g. TF_VAR_backup_password)."
  type        = string
  sensitive   = true
}
