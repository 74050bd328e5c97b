variable "name" {
  description = "Name prefix of every resource (launch template, group, target group)."
  type        = string
  default     = "bookstore"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.name))
    error_message = "name: 2 to 21 lower-case letters, digits or dashes, starting with a letter (target group names are short)."
  }
}

variable "ami_id" {
  description = "Debian 12 (bookworm) AMI the instances boot; cloud-init runs the user-data."
  type        = string
  validation {
    condition     = can(regex("^ami-[0-9a-f]{8,17}$", var.ami_id))
    error_message = "ami_id must look like ami-0123456789abcdef0."
  }
}

variable "instance_type" {
  description = "EC2 instance type of the app instances."
  type        = string
  default     = "t3.small"
}

variable "vpc_id" {
  description = "VPC of the target group."
  type        = string
  validation {
    condition     = can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "vpc_id must look like vpc-0123abcd."
  }
}

variable "subnet_ids" {
  description = "Subnets the autoscaling group spreads instances over."
  type        = list(string)
  validation {
    condition     = length(var.subnet_ids) > 0 && alltrue([for s in var.subnet_ids : can(regex("^subnet-[0-9a-f]+$", s))])
    error_message = "subnet_ids: at least one, each like subnet-0123abcd."
  }
}

variable "security_group_ids" {
  description = "Security groups of the instances (the load balancer must reach app_port)."
  type        = list(string)
  default     = []
}

variable "min_size" {
  description = "Fewest instances in the group."
  type        = number
  default     = 2
  validation {
    condition     = var.min_size >= 0 && floor(var.min_size) == var.min_size
    error_message = "min_size must be a whole number, 0 or more."
  }
}

variable "max_size" {
  description = "Most instances in the group."
  type        = number
  default     = 4
  validation {
    condition     = var.max_size >= 1 && floor(var.max_size) == var.max_size
    error_message = "max_size must be a whole number, 1 or more."
  }
}

variable "desired_capacity" {
  description = "Instances wanted now; between min_size and max_size."
  type        = number
  default     = 2
  validation {
    condition     = var.desired_capacity >= 0 && floor(var.desired_capacity) == var.desired_capacity
    error_message = "desired_capacity must be a whole number, 0 or more."
  }
}

variable "app_port" {
  description = "Port the bookstore app listens on; the target group and proxy-check use it."
  type        = number
  default     = 8080
  validation {
    condition     = var.app_port >= 1 && var.app_port <= 65535
    error_message = "app_port must be from 1 to 65535."
  }
}

variable "health_check_path" {
  description = "HTTP path of the app's health page: the target group's health check and proxy-check's target, answered 200."
  type        = string
  default     = "/health"
  validation {
    condition     = can(regex("^/[A-Za-z0-9/._-]*$", var.health_check_path))
    error_message = "health_check_path must start with / and hold no query string."
  }
}

variable "health_check_interval" {
  description = "Seconds between health checks (target group), and between proxy-check's cron runs, rounded up to minutes."
  type        = number
  default     = 30
  validation {
    condition     = var.health_check_interval >= 5 && var.health_check_interval <= 300
    error_message = "health_check_interval must be from 5 to 300 seconds."
  }
}

variable "health_check_timeout" {
  description = "Seconds a health check may take, in the target group and in proxy-check (--timeout)."
  type        = number
  default     = 5
  validation {
    condition     = var.health_check_timeout >= 2 && var.health_check_timeout <= 120
    error_message = "health_check_timeout must be from 2 to 120 seconds."
  }
}

variable "healthy_threshold" {
  description = "Consecutive successes before a target is healthy, in the target group and in proxy-check."
  type        = number
  default     = 3
  validation {
    condition     = var.healthy_threshold >= 2 && var.healthy_threshold <= 10
    error_message = "healthy_threshold must be from 2 to 10 (the load balancer's range)."
  }
}

variable "unhealthy_threshold" {
  description = "Consecutive failures before a target is unhealthy, in the target group and in proxy-check."
  type        = number
  default     = 2
  validation {
    condition     = var.unhealthy_threshold >= 2 && var.unhealthy_threshold <= 10
    error_message = "unhealthy_threshold must be from 2 to 10 (the load balancer's range)."
  }
}

variable "envkit_deb_url" {
  description = "Where instances fetch the envkit .deb (cpack -G DEB), e.g. an HTTPS URL of a release."
  type        = string
  validation {
    condition     = can(regex("^https?://", var.envkit_deb_url))
    error_message = "envkit_deb_url must be an http(s):// URL."
  }
}

variable "database_host" {
  description = "Host name of the shop database that db-backup dumps nightly to local disk."
  type        = string
}

variable "database_name" {
  description = "Database that db-backup dumps."
  type        = string
  default     = "shop"
}

variable "backup_password" {
  description = "Password of the database's backup user; reaches the instance in its user-data, stored there 0600."
  type        = string
  sensitive   = true
  validation {
    condition     = length(var.backup_password) >= 12
    error_message = "backup_password must be at least 12 characters."
  }
}

variable "backup_schedule" {
  description = "Cron schedule of the nightly db-backup on each instance."
  type        = string
  default     = "15 2 * * *"
  validation {
    condition     = length(split(" ", var.backup_schedule)) == 5
    error_message = "backup_schedule must be five cron fields."
  }
}

variable "backup_keep_daily" {
  description = "Daily backups each instance keeps on its disk."
  type        = number
  default     = 7
  validation {
    condition     = var.backup_keep_daily >= 1 && var.backup_keep_daily <= 60
    error_message = "backup_keep_daily must be from 1 to 60."
  }
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
